// swift-tools-version:6.1
// A third-party backend, written only against the public API of Checkpointing: a package of
// its own, so that nothing `package`-scoped of the library is visible to it. See the article
// "Writing a backend" in the Checkpointing documentation, which this example follows.
import PackageDescription

let package = Package(
    name: "FileBackend",
    platforms: [.macOS(.v15)],
    products: [.library(name: "FileBackend", targets: ["FileBackend"])],
    dependencies: [
        .package(name: "swift-checkpointing", path: "../.."),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .target(
            name: "FileBackend",
            dependencies: [
                .product(name: "Checkpointing", package: "swift-checkpointing"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "FileBackendTests",
            dependencies: [
                "FileBackend",
                .product(name: "Checkpointing", package: "swift-checkpointing"),
                .product(name: "CheckpointingTestKit", package: "swift-checkpointing"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
