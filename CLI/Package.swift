// swift-tools-version:6.1
import Foundation
import PackageDescription

// The `checkpoint` command-line tool, a package of its own so that its argument parser never
// enters a user's build of the library. The root package is a path dependency; its identity
// is its folder's name.
let rootPackage = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()

let package = Package(
    name: "checkpoint-cli",
    platforms: [.macOS(.v15)],
    products: [.executable(name: "checkpoint", targets: ["checkpoint"])],
    dependencies: [
        .package(path: rootPackage.path),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .executableTarget(
            name: "checkpoint",
            dependencies: [
                .product(name: "Checkpointing", package: rootPackage.lastPathComponent),
                .product(name: "CheckpointSQLite", package: rootPackage.lastPathComponent),
                .product(name: "CheckpointPostgres", package: rootPackage.lastPathComponent),
                .product(name: "CheckpointRedisCache", package: rootPackage.lastPathComponent),
                .product(name: "CheckpointEncryption", package: rootPackage.lastPathComponent),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "CheckpointCLITests",
            dependencies: [
                .product(name: "Checkpointing", package: rootPackage.lastPathComponent),
                .product(name: "CheckpointSQLite", package: rootPackage.lastPathComponent),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
