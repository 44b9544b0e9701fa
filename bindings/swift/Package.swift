// swift-tools-version:5.9
// tokenvault for Swift: the uniffi-generated bindings (Sources/TokenVaultKit/TokenVaultKit.swift),
// a Keychain helper for the vault key, and the native library as an XCFramework that
// build-xcframework.sh builds on a Mac (iOS device, iOS simulator, macOS).
//
// NOT COMPILED on the Linux machines this repository is built and tested on: there is no Swift
// toolchain there. See README.md.
import PackageDescription

let package = Package(
    name: "TokenVault",
    platforms: [.iOS(.v13), .macOS(.v11)],
    products: [
        .library(name: "TokenVaultKit", targets: ["TokenVaultKit"]),
    ],
    targets: [
        // libtokenvault.a for each platform, with the C header and module map of `tokenvaultFFI`.
        .binaryTarget(name: "tokenvaultFFI", path: "build/TokenVaultFFI.xcframework"),
        .target(
            name: "TokenVaultKit",
            dependencies: ["tokenvaultFFI"],
            path: "Sources/TokenVaultKit"
        ),
        .testTarget(
            name: "TokenVaultKitTests",
            dependencies: ["TokenVaultKit"],
            path: "Tests/TokenVaultKitTests"
        ),
    ]
)
