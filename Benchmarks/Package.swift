// swift-tools-version:6.1
import Foundation
import PackageDescription

// A package of its own, so that the benchmark never slows a user's build of the library.
// The root package is a path dependency; its identity is its folder's name.
let rootPackage = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()

let package = Package(
    name: "checkpoint-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: rootPackage.path)
    ],
    targets: [
        .systemLibrary(
            name: "CSQLiteFloor",
            path: "Sources/CSQLiteFloor",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .systemLibrary(
            name: "CPostgresFloor",
            path: "Sources/CPostgresFloor",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .systemLibrary(
            name: "CHiredisFloor",
            path: "Sources/CHiredisFloor",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .executableTarget(
            name: "checkpoint-benchmarks",
            dependencies: [
                "CSQLiteFloor",
                "CPostgresFloor",
                "CHiredisFloor",
                .product(name: "Checkpointing", package: rootPackage.lastPathComponent),
                .product(name: "CheckpointSQLite", package: rootPackage.lastPathComponent),
                .product(name: "CheckpointPostgres", package: rootPackage.lastPathComponent),
                .product(name: "CheckpointRedisCache", package: rootPackage.lastPathComponent),
                .product(name: "CheckpointEncryption", package: rootPackage.lastPathComponent),
            ],
            path: "Sources/CheckpointBenchmarks"
        ),
    ],
    swiftLanguageModes: [.v6]
)
