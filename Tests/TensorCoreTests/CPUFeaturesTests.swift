import Testing
import TensorCore

@Test func buildFeaturesAreAvailableOnThisMachine() throws {
    // The test binary itself was built for these features, so if it runs they exist;
    // the check must agree.
    #expect(CPUFeatures.missingFeatures.isEmpty)
    try CPUFeatures.check()
}

@Test func theBuildListsTheExtensionsTheCompilerTargets() {
    // Every x86-64 build has SSE4.2-class features at least when built with -march; the
    // list comes from the compiler's macros, so it names later extensions when they are on.
    let features = CPUFeatures.buildFeatures
    #if arch(x86_64)
    if !features.isEmpty { #expect(features.contains("sse4.2") || features.contains("ssse3")) }
    if features.contains("avx2") { #expect(features.contains("fma") && features.contains("bmi2")) }
    #endif
    #expect(Set(features).count == features.count)
    let error = CPUFeatureError(missing: ["avx512f", "avx512vnni"])
    #expect(error.description.contains("avx512f, avx512vnni") && error.description.contains("VINSPECT_CPU"))
}
