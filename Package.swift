// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "swift-checkpointing",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Checkpointing", targets: ["Checkpointing"]),
        .library(name: "CheckpointSQLite", targets: ["CheckpointSQLite"]),
        .library(name: "CheckpointPostgres", targets: ["CheckpointPostgres"]),
        .library(name: "CheckpointRedisCache", targets: ["CheckpointRedisCache"]),
        .library(name: "CheckpointEncryption", targets: ["CheckpointEncryption"]),
        .library(name: "CheckpointingTestKit", targets: ["CheckpointingTestKit"]),
        .library(name: "CheckpointService", targets: ["CheckpointService"]),
        .executable(name: "example-agent", targets: ["ExampleAgent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        .target(
            name: "Checkpointing",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // The backends' runtime (the connection pool, the job thread, the content cache): not a
        // product, and `package`-scoped, so that `import Checkpointing` shows users only what
        // they use.
        // Waiting for a socket with a sub-millisecond timeout (ppoll), for the runtime.
        .systemLibrary(name: "CCheckpointPoll", path: "Sources/CCheckpointPoll"),
        .target(
            name: "CheckpointRuntime",
            dependencies: [
                "Checkpointing",
                "CCheckpointPoll",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .systemLibrary(
            name: "CCheckpointSQLite",
            path: "Sources/CCheckpointSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .target(
            name: "CheckpointSQLite",
            dependencies: [
                "Checkpointing",
                "CheckpointRuntime",
                "CCheckpointSQLite",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .systemLibrary(
            name: "CCheckpointPostgres",
            path: "Sources/CCheckpointPostgres",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .target(
            name: "CheckpointPostgres",
            dependencies: [
                "Checkpointing",
                "CheckpointRuntime",
                "CCheckpointPostgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .systemLibrary(
            name: "CCheckpointHiredis",
            path: "Sources/CCheckpointHiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .target(
            name: "CheckpointRedisCache",
            dependencies: [
                "Checkpointing",
                "CheckpointRuntime",
                "CCheckpointHiredis",
                "CCheckpointSodium",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .systemLibrary(
            name: "CCheckpointSodium",
            path: "Sources/CCheckpointSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        .target(
            name: "CheckpointEncryption",
            dependencies: ["Checkpointing", "CCheckpointSodium"]
        ),
        .target(
            name: "CheckpointingTestKit",
            dependencies: ["Checkpointing"]
        ),
        .executableTarget(
            name: "CheckpointFaultWriter",
            dependencies: [
                "Checkpointing", "CheckpointSQLite", "CheckpointPostgres", "CheckpointRedisCache",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Fuzzing of every decoder of stored bytes and parser of configuration text (not a
        // product: scripts/fuzz.sh runs it; see the README's "Fuzzing").
        .systemLibrary(
            name: "CCheckpointFuzzer",
            path: "Sources/CCheckpointFuzzer"
        ),
        .executableTarget(
            name: "CheckpointFuzz",
            dependencies: [
                "Checkpointing", "CheckpointRuntime", "CheckpointSQLite", "CheckpointPostgres", "CheckpointRedisCache", "CheckpointEncryption",
                "CCheckpointFuzzer",
            ]
        ),
        .executableTarget(
            name: "ExampleAgent",
            dependencies: [
                "Checkpointing", "CheckpointSQLite", "CheckpointPostgres", "CheckpointRedisCache",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Examples/ExampleAgent"
        ),
        // Services for swift-service-lifecycle: the periodic idle sweep, and closing a
        // checkpointer on graceful shutdown. A product of its own, so that only a server that
        // uses it builds swift-service-lifecycle.
        .target(
            name: "CheckpointService",
            dependencies: [
                "Checkpointing",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .testTarget(
            name: "CheckpointingTests",
            dependencies: [
                "Checkpointing", "CheckpointingTestKit", "CheckpointRuntime", "CheckpointService",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ]
        ),
        .testTarget(
            name: "CheckpointEncryptionTests",
            dependencies: ["Checkpointing", "CheckpointEncryption", "CheckpointSQLite", "CheckpointingTestKit"]
        ),
        .testTarget(
            name: "CheckpointPostgresTests",
            dependencies: [
                "Checkpointing", "CheckpointPostgres", "CheckpointEncryption", "CheckpointingTestKit", "CheckpointSQLite",
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ]
        ),
        .testTarget(
            name: "CheckpointRedisCacheTests",
            dependencies: [
                "Checkpointing", "CheckpointRedisCache", "CheckpointPostgres", "CheckpointSQLite", "CheckpointEncryption",
                "CheckpointingTestKit",
            ]
        ),
        .testTarget(
            name: "CheckpointSQLiteTests",
            dependencies: [
                "Checkpointing", "CheckpointSQLite", "CheckpointingTestKit", "CCheckpointSQLite",
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
