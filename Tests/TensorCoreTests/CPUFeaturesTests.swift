import Testing
import TensorCore

@Test func buildFeaturesAreAvailableOnThisMachine() throws {
    // The test binary itself was built for these features, so if it runs they exist;
    // the check must agree.
    #expect(CPUFeatures.missingFeatures.isEmpty)
    try CPUFeatures.check()
}
