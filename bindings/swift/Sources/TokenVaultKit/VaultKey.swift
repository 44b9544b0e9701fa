// The recommended way to keep the vault key on Apple platforms: 32 random bytes in the Keychain,
// created on first use, readable after the first unlock (so background refreshes work), never
// leaving the device. Hand-written; not compiled on the Linux build machines (see README.md).

import Foundation
import Security

/// Why the vault key could not be read or created.
public enum VaultKeyError: Error, Equatable {
    /// A Keychain call failed with this `OSStatus`.
    case keychain(OSStatus)
    /// An item exists under the key's name but is not 32 bytes; it is left alone.
    case unexpectedItem
}

/// The vault key in the Keychain.
public enum VaultKey {
    /// The 32-byte key stored under `service`/`account`, created (from `SecRandomCopyBytes`) if
    /// there is none yet. With `accessGroup`, an app and its extensions share it (and the vault).
    ///
    /// The item is `kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly`: background refreshes work
    /// once the device was unlocked after boot, and the key is never in a backup or on another
    /// device. Exclude the vault file from backups too (`URLResourceValues.isExcludedFromBackup`):
    /// a restored file without its key only opens as `TokenVaultError.WrongKey`.
    /// Nothing is ever overwritten or deleted here.
    public static func loadOrCreate(
        service: String = "tokenvault",
        account: String = "vault-key",
        accessGroup: String? = nil
    ) throws -> Data {
        if let existing = try read(service: service, account: account, accessGroup: accessGroup) {
            return existing
        }
        var key = Data(count: 32)
        let random = key.withUnsafeMutableBytes { buffer -> OSStatus in
            guard let base = buffer.baseAddress else { return errSecAllocate }
            return SecRandomCopyBytes(kSecRandomDefault, 32, base)
        }
        guard random == errSecSuccess else { throw VaultKeyError.keychain(random) }

        var attributes = baseQuery(service: service, account: account, accessGroup: accessGroup)
        attributes[kSecValueData as String] = key
        attributes[kSecAttrAccessible as String] = kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
        let added = SecItemAdd(attributes as CFDictionary, nil)
        if added == errSecDuplicateItem {
            // An extension created it at the same moment: use theirs.
            if let existing = try read(service: service, account: account, accessGroup: accessGroup) {
                return existing
            }
        }
        guard added == errSecSuccess else { throw VaultKeyError.keychain(added) }
        return key
    }

    /// Open (or create) the vault at `url` with the Keychain key.
    public static func openVault(at url: URL, accessGroup: String? = nil) throws -> TokenVault {
        let key = try loadOrCreate(accessGroup: accessGroup)
        return try TokenVault.openWithKey(path: url.path, key: key)
    }

    private static func baseQuery(service: String, account: String, accessGroup: String?) -> [String: Any] {
        var query: [String: Any] = [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: service,
            kSecAttrAccount as String: account,
        ]
        if let group = accessGroup {
            query[kSecAttrAccessGroup as String] = group
        }
        #if os(macOS)
        // The iOS-style keychain on macOS (no login-keychain prompts).
        query[kSecUseDataProtectionKeychain as String] = true
        #endif
        return query
    }

    private static func read(service: String, account: String, accessGroup: String?) throws -> Data? {
        var query = baseQuery(service: service, account: account, accessGroup: accessGroup)
        query[kSecReturnData as String] = true
        query[kSecMatchLimit as String] = kSecMatchLimitOne
        var item: CFTypeRef?
        let status = SecItemCopyMatching(query as CFDictionary, &item)
        switch status {
        case errSecSuccess:
            guard let data = item as? Data, data.count == 32 else { throw VaultKeyError.unexpectedItem }
            return data
        case errSecItemNotFound:
            return nil
        default:
            throw VaultKeyError.keychain(status)
        }
    }
}
