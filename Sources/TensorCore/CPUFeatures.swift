import CCPUFeatures

/// The start-up check that the running CPU can execute this build.
///
/// The package is compiled for an explicit CPU level (see `Package.swift`, `VINSPECT_CPU`),
/// because the SIMD kernels are about 100x slower without one. Running such a build on an
/// older CPU would end in an illegal-instruction signal; calling ``check()`` first turns
/// that into a clear error instead.
public enum CPUFeatures {
    /// The instruction-set extensions this build was compiled to use, e.g. `["avx2", "fma", "avx512f"]`.
    public static var buildFeatures: [String] {
        var buffer = [CChar](repeating: 0, count: 512)
        vinspect_cpu_build_features(&buffer, Int32(buffer.count))
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .split(separator: " ").map(String.init)
    }

    /// The extensions this build needs that the running CPU lacks; empty when it can run.
    public static var missingFeatures: [String] {
        var buffer = [CChar](repeating: 0, count: 512)
        _ = vinspect_cpu_missing_features(&buffer, Int32(buffer.count))
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .split(separator: " ").map(String.init)
    }

    /// Throws ``CPUFeatureError`` when this CPU lacks an extension the build was compiled for.
    public static func check() throws(CPUFeatureError) {
        let missing = missingFeatures
        if !missing.isEmpty { throw CPUFeatureError(missing: missing) }
    }
}

/// The running CPU lacks instruction-set extensions that this build was compiled to use.
public struct CPUFeatureError: Error, CustomStringConvertible, Sendable {
    /// The missing extensions, e.g. `["avx512f", "avx512bw"]`.
    public let missing: [String]

    /// The error for these missing extensions.
    public init(missing: [String]) { self.missing = missing }

    public var description: String {
        "this build of vinspect (or of the program that embeds it) was compiled for CPU extensions this processor lacks "
            + "(\(missing.joined(separator: ", "))). Rebuild for this machine with "
            + "`VINSPECT_CPU=native swift build -c release` (or VINSPECT_CPU=x86-64-v3 for AVX2, "
            + "VINSPECT_CPU=portable for any CPU, slower)."
    }
}
