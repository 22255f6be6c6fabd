// swift-tools-version:6.2
//
// VisualInspection: a pure-Swift engine for industrial visual quality inspection.
//
// CPU target. The SIMD kernels in TensorCore need an explicit CPU target: without one,
// `SIMD16<Float>.addingProduct` is lowered to a libm `fmaf` call per lane (about 100x
// slower). The build therefore passes `-march` to the Clang importer, which sets the
// target features that Swift's code generator uses. Choose it with VINSPECT_CPU:
//
//   (unset)                    the build machine's own CPU (-march=native) on x86-64;
//                              nothing on other architectures
//   VINSPECT_CPU=x86-64-v4     any AVX-512 machine (a binary to copy to such machines)
//   VINSPECT_CPU=x86-64-v3     any AVX2 + FMA machine
//   VINSPECT_CPU=portable      no CPU flags at all: runs anywhere, kernels are slow
//
// The default is the build machine because machines of "the same kind" differ: some have
// AVX-512, some only AVX2, and a binary built for one level crashes on a lower one. The
// kernels pick their register blocking from the features the build has (see
// `CPUFeatures`), and the executable checks at start-up that the running CPU has what the
// build assumed, stopping with a clear message instead of an illegal instruction.
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
/// The CPUID check is compiled for the same target so that the compiler's own feature
/// macros (`__AVX512F__`, `__FMA__`, ...) say what the build assumed.
let cpuCheckCSettings: [CSetting] = march.map { [.unsafeFlags(["-march=\($0)"])] } ?? []

/// The compact backbone weights that ship with the project (see README); copied next to
/// the executable as a resource when present.
let shippedBackboneExists = FileManager.default.fileExists(
    atPath: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Sources/VisualInspection/Resources/compact-default.vimodel").path)

let package = Package(
    name: "VisualInspection",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "VisualInspection", targets: ["VisualInspection"]),
        // For the nested Benchmarks package, which measures TensorCore's kernels directly.
        .library(name: "TensorCore", targets: ["TensorCore"]),
        .library(name: "NeuralNet", targets: ["NeuralNet"]),
        .library(name: "ModelFile", targets: ["ModelFile"]),
        .library(name: "Anomaly", targets: ["Anomaly"]),
        .library(name: "FewShot", targets: ["FewShot"]),
        .executable(name: "vinspect", targets: ["vinspect"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // `swift package generate-documentation --target VisualInspection` (the DocC catalog
        // in Sources/VisualInspection/VisualInspection.docc); build-time only.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // System libraries: headers and link flags only.
        .systemLibrary(
            name: "CPNG", pkgConfig: "libpng",
            providers: [.apt(["libpng-dev"]), .brew(["libpng"])]),
        .systemLibrary(
            name: "CJPEG", pkgConfig: "libjpeg",
            providers: [.apt(["libjpeg-dev"]), .brew(["jpeg-turbo"])]),
        .systemLibrary(
            name: "CZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]),
        // The setjmp/longjmp boundary: libpng and libjpeg report errors by longjmp, which
        // must never unwind through Swift frames, so every call into them that can fail
        // happens inside these C functions, which turn failures into error codes.
        // Also the fast PNG encoder for heat maps, which takes zlib's checksums.
        .target(name: "CCodecs", dependencies: ["CPNG", "CJPEG", "CZlib"]),
        // CPUID check: which instruction-set extensions the build assumed and the CPU lacks.
        .target(name: "CCPUFeatures", cSettings: cpuCheckCSettings),
        .target(name: "ImageIO", dependencies: ["CCodecs", "TensorCore"], swiftSettings: simdSwiftSettings),
        .target(name: "TensorCore", dependencies: ["CCPUFeatures"], swiftSettings: simdSwiftSettings),
        // Intrinsics Swift does not reach (a cache prefetch for the convolution's weights).
        .target(name: "CIntrinsics"),
        .target(name: "NeuralNet", dependencies: ["TensorCore", "ModelFile", "CIntrinsics"], swiftSettings: simdSwiftSettings),
        // The anomaly scorer: patch features, memory bank, maps, calibration, metrics.
        .target(name: "Anomaly", dependencies: ["TensorCore", "NeuralNet"], swiftSettings: simdSwiftSettings),
        // The prototype-network few-shot classifier and the episodic training of its
        // projection head (autograd from NeuralNet, storage in model files).
        .target(name: "FewShot", dependencies: ["TensorCore", "NeuralNet", "ModelFile"], swiftSettings: simdSwiftSettings),
        // The model file format and the weight importers (safetensors, PyTorch); standard
        // library, Glibc and zlib (CRC-32) only, so loading weights never depends on the
        // compute engine.
        .target(name: "ModelFile", dependencies: ["CZlib"]),
        .target(
            name: "VisualInspection", dependencies: ["ImageIO", "TensorCore", "NeuralNet", "ModelFile", "Anomaly", "FewShot"],
            exclude: shippedBackboneExists ? [] : ["Resources"],
            resources: shippedBackboneExists ? [.copy("Resources/compact-default.vimodel")] : [],
            swiftSettings: simdSwiftSettings),
        // Research and training tools, outside the integrator's module: generated images
        // and synthetic defects; data-set layouts and the evaluation of settings; the
        // distillation of a compact backbone from a pretrained one.
        .target(name: "Synthesis", dependencies: ["ImageIO", "TensorCore"], swiftSettings: simdSwiftSettings),
        .target(
            name: "Evaluation", dependencies: ["VisualInspection", "Synthesis", "ImageIO", "TensorCore", "NeuralNet", "Anomaly"],
            swiftSettings: simdSwiftSettings),
        .target(
            name: "Distillation", dependencies: ["VisualInspection", "Synthesis", "ImageIO", "TensorCore", "NeuralNet"],
            swiftSettings: simdSwiftSettings),
        .executableTarget(
            name: "vinspect",
            dependencies: [
                "VisualInspection", "Synthesis", "Evaluation", "Distillation", "ImageIO", "TensorCore", "NeuralNet",
                "ModelFile", "Anomaly", "FewShot",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: simdSwiftSettings),
        // The integrator's example of the README (Examples/InspectFolder); a test runs it.
        .executableTarget(
            name: "inspect-folder-example", dependencies: ["VisualInspection"], path: "Examples/InspectFolder",
            swiftSettings: simdSwiftSettings),
        .testTarget(name: "ImageIOTests", dependencies: ["ImageIO"], swiftSettings: simdSwiftSettings),
        .testTarget(name: "ModelFileTests", dependencies: ["ModelFile"]),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore"], swiftSettings: simdSwiftSettings),
        .testTarget(name: "AnomalyTests", dependencies: ["Anomaly", "NeuralNet"], swiftSettings: simdSwiftSettings),
        .testTarget(name: "FewShotTests", dependencies: ["FewShot", "NeuralNet", "TensorCore", "ModelFile"], swiftSettings: simdSwiftSettings),
        .testTarget(name: "NeuralNetTests", dependencies: ["NeuralNet", "ModelFile"], swiftSettings: simdSwiftSettings),
        .testTarget(
            name: "VisualInspectionTests",
            dependencies: [
                "VisualInspection", "Synthesis", "Evaluation", "Distillation", "ImageIO", "TensorCore", "NeuralNet", "ModelFile",
                "Anomaly", "FewShot",
            ],
            swiftSettings: simdSwiftSettings),
        .testTarget(
            name: "vinspectTests",
            dependencies: ["vinspect", "inspect-folder-example", "VisualInspection", "ImageIO", "TensorCore", "NeuralNet", "ModelFile"],
            swiftSettings: simdSwiftSettings),
    ],
    swiftLanguageModes: [.v6]
)
