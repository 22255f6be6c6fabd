// swift-tools-version:6.0
//
// VisualInspection: a pure-Swift engine for industrial visual quality inspection.
//
// CPU target. The SIMD kernels in TensorCore need an explicit CPU target: without one,
// `SIMD16<Float>.addingProduct` is lowered to a libm `fmaf` call per lane (about 100x
// slower). The build therefore passes `-march` to the Clang importer, which sets the
// target features that Swift's code generator uses. Choose it with VINSPECT_CPU:
//
//   (unset)            x86-64-v4 (AVX-512) on x86-64; nothing on other architectures
//   VINSPECT_CPU=native        the build machine's own CPU
//   VINSPECT_CPU=x86-64-v3     AVX2 + FMA machines without AVX-512
//   VINSPECT_CPU=portable      no CPU flags at all: runs anywhere, kernels are slow
//
// The executable checks at start-up that the running CPU has what the build assumed
// (see `CPUFeatures`) and stops with a clear message instead of an illegal instruction.
import Foundation
import PackageDescription

let cpuChoice = ProcessInfo.processInfo.environment["VINSPECT_CPU"] ?? "default"

/// The `-march` value handed to the Clang importer, or nil for a portable build.
let march: String? = {
    switch cpuChoice {
    case "portable", "none": return nil
    case "default":
        #if arch(x86_64)
        return "x86-64-v4"
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

let package = Package(
    name: "VisualInspection",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "VisualInspection", targets: ["VisualInspection"]),
        // For the nested Benchmarks package, which measures TensorCore's kernels directly.
        .library(name: "TensorCore", targets: ["TensorCore"]),
        .executable(name: "vinspect", targets: ["vinspect"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // System libraries: headers and link flags only.
        .systemLibrary(
            name: "CPNG", pkgConfig: "libpng",
            providers: [.apt(["libpng-dev"]), .brew(["libpng"])]),
        .systemLibrary(
            name: "CJPEG", pkgConfig: "libjpeg",
            providers: [.apt(["libjpeg-dev"]), .brew(["jpeg-turbo"])]),
        // The setjmp/longjmp boundary: libpng and libjpeg report errors by longjmp, which
        // must never unwind through Swift frames, so every call into them that can fail
        // happens inside these C functions, which turn failures into error codes.
        .target(name: "CCodecs", dependencies: ["CPNG", "CJPEG"]),
        // CPUID check: which instruction-set extensions the build assumed and the CPU lacks.
        .target(name: "CCPUFeatures", cSettings: cpuCheckCSettings),
        .target(name: "ImageIO", dependencies: ["CCodecs"], swiftSettings: simdSwiftSettings),
        .target(name: "TensorCore", dependencies: ["CCPUFeatures"], swiftSettings: simdSwiftSettings),
        .target(
            name: "VisualInspection", dependencies: ["ImageIO", "TensorCore"],
            swiftSettings: simdSwiftSettings),
        .executableTarget(
            name: "vinspect",
            dependencies: [
                "VisualInspection",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: simdSwiftSettings),
        .testTarget(name: "ImageIOTests", dependencies: ["ImageIO"], swiftSettings: simdSwiftSettings),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore"], swiftSettings: simdSwiftSettings),
        .testTarget(
            name: "vinspectTests", dependencies: ["vinspect", "VisualInspection"],
            swiftSettings: simdSwiftSettings),
    ],
    swiftLanguageModes: [.v6]
)
