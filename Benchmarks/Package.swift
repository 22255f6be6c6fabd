// swift-tools-version:6.2
//
// Side-by-side benchmarks for VisualInspection, kept out of the root package so that its
// users never build them. Run from this directory:
//
//   swift run -c release gemm-bench
//
// CPU target: same rule as the root package (see ../Package.swift): VINSPECT_CPU unset
// means the build machine (-march=native); x86-64-v4 / x86-64-v3 / portable as there. The
// root package reads the same variable, so both are always built for the same CPU.
import Foundation
import PackageDescription

let cpuChoice = ProcessInfo.processInfo.environment["VINSPECT_CPU"] ?? "default"

/// The `-march` value handed to the Clang importer, or nil for a portable build.
let march: String? = {
    switch cpuChoice {
    case "portable", "none": return nil
    case "default":
        #if arch(x86_64)
        return "native"
        #else
        return nil
        #endif
    default: return cpuChoice
    }
}()

let simdSwiftSettings: [SwiftSetting] =
    march.map { [.unsafeFlags(["-Xcc", "-march=\($0)"])] } ?? []

/// SwiftPM names a path dependency after its directory, which differs between checkouts
/// (`VisualInspection`, a worktree name, ...), so derive it instead of spelling it out.
let rootPackage = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "VisualInspectionBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
    ],
    targets: [
        .executableTarget(
            name: "gemm-bench",
            dependencies: [.product(name: "TensorCore", package: rootPackage)],
            swiftSettings: simdSwiftSettings),
        .executableTarget(
            name: "backbone-bench",
            dependencies: [
                .product(name: "TensorCore", package: rootPackage), .product(name: "NeuralNet", package: rootPackage),
                .product(name: "ModelFile", package: rootPackage), .product(name: "VisualInspection", package: rootPackage),
            ],
            swiftSettings: simdSwiftSettings),
        .executableTarget(
            name: "anomaly-bench",
            dependencies: [.product(name: "TensorCore", package: rootPackage), .product(name: "Anomaly", package: rootPackage)],
            swiftSettings: simdSwiftSettings),
        .executableTarget(
            name: "knn-bench",
            dependencies: [.product(name: "TensorCore", package: rootPackage), .product(name: "Anomaly", package: rootPackage)],
            swiftSettings: simdSwiftSettings),
        .executableTarget(
            name: "layer-profile",
            dependencies: [.product(name: "TensorCore", package: rootPackage), .product(name: "NeuralNet", package: rootPackage)],
            swiftSettings: simdSwiftSettings),
        .executableTarget(
            name: "winograd-bench",
            dependencies: [.product(name: "TensorCore", package: rootPackage), .product(name: "NeuralNet", package: rootPackage)],
            swiftSettings: simdSwiftSettings),
        .executableTarget(
            name: "depthwise-bench",
            dependencies: [.product(name: "TensorCore", package: rootPackage), .product(name: "NeuralNet", package: rootPackage)],
            swiftSettings: simdSwiftSettings),
        .executableTarget(
            name: "train-bench",
            dependencies: [
                .product(name: "TensorCore", package: rootPackage), .product(name: "NeuralNet", package: rootPackage),
                .product(name: "VisualInspection", package: rootPackage),
            ],
            swiftSettings: simdSwiftSettings),
    ],
    swiftLanguageModes: [.v6]
)
