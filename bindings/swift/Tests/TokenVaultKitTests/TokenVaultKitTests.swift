// The glue of the Swift bindings: error mapping, use after close, the panic export, UTF-8.
// Runs with `swift test` on a Mac after build-xcframework.sh; never run on the Linux build machines.

import Foundation
import XCTest
@testable import TokenVaultKit

final class TokenVaultKitTests: XCTestCase {
    private var dir: URL!
    private let key = Data((0..<32).map { UInt8($0 * 7 + 1) })

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    private func openWithSession(_ account: String = "player") throws -> TokenVault {
        let vault = try TokenVault.openWithKey(path: dir.appendingPathComponent("v.db").path, key: key)
        try vault.registerPreset(preset: .oauth2, name: "backend", url: "http://127.0.0.1:9/token")
        _ = try vault.store(session: NewSession(
            account: account, profile: "backend", accessToken: String(repeating: "a", count: 900),
            expiresInSecs: 3600
        ))
        return vault
    }

    func testStoreReadAndErrorMapping() throws {
        let vault = try openWithSession("Spieler-玩家-🎮")
        XCTAssertEqual(try vault.accessToken(account: "Spieler-玩家-🎮").token, String(repeating: "a", count: 900))
        XCTAssertEqual(try vault.listAccounts(), ["Spieler-玩家-🎮"])
        XCTAssertThrowsError(try vault.accessToken(account: "nobody")) { error in
            guard case TokenVaultError.NotFound(let code, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(code, 7)
        }
        XCTAssertThrowsError(try TokenVault.openWithKey(path: dir.appendingPathComponent("v.db").path, key: Data(count: 32))) { error in
            guard case TokenVaultError.WrongKey(let code, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(code, 5)
        }
        try vault.close()
    }

    func testUseAfterClose() throws {
        let vault = try openWithSession()
        try vault.close()
        try vault.close()
        XCTAssertTrue(vault.isClosed())
        XCTAssertThrowsError(try vault.accessToken(account: "player")) { error in
            guard case TokenVaultError.Closed(let code, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(code, 13)
        }
    }

    func testPanicComesBackAsInternal() {
        XCTAssertThrowsError(try debugTriggerPanic()) { error in
            guard case TokenVaultError.Internal(let code, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(code, 10)
        }
    }

    func testRecordsPrintNoSecrets() {
        let token = AccessToken(token: "sekrit", generation: 1)
        XCTAssertFalse(String(reflecting: token).contains("sekrit"))
    }
}
