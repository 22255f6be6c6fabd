import FewShot
import NeuralNet
import TensorCore
import Testing

/// `gradientProblems` (NeuralNet's finite-difference check) as test issues.
private func checkGradients(_ name: String, inputs: [Tensor], _ function: ([Variable]) -> Variable,
                            sourceLocation: SourceLocation = #_sourceLocation) {
    for problem in gradientProblems(inputs: inputs, function) { Issue.record("\(name): \(problem)", sourceLocation: sourceLocation) }
}

private func randomTensor(_ shape: [Int], seed: UInt64) -> Tensor {
    var rng = Xoshiro256(seed: seed)
    return Tensor(randomNormal: shape, using: &rng)
}

@Test func episodeLossGradientsMatchFiniteDifferences() {
    checkGradients("prototypicalLoss", inputs: [randomTensor([6, 3], seed: 23), randomTensor([4, 3], seed: 24)]) { v in
        prototypicalLoss(support: v[0], supportLabels: [0, 0, 1, 1, 2, 2], query: v[1], queryLabels: [2, 0, 1, 1],
                         ways: 3, temperature: 0.5)
    }
    for center in [false, true] {
        checkGradients("cosinePrototypicalLoss center \(center)",
                       inputs: [randomTensor([6, 4], seed: 32), randomTensor([5, 4], seed: 33)]) { v in
            cosinePrototypicalLoss(support: v[0], supportLabels: [0, 1, 2, 0, 1, 2], query: v[1], queryLabels: [2, 0, 1, 1, 0],
                                   ways: 3, scale: 3, centerOnSupport: center)
        }
    }
}

@Test func aWrongGradientIsCaught() {
    // The check itself can fail: x * x with one factor taken as a constant has half the
    // true gradient; a value rebuilt from the input's numbers has none.
    let halved = gradientProblems(inputs: [randomTensor([3, 2], seed: 5)]) { v in v[0] * Variable(v[0].value) }
    #expect(halved.count == 1 && halved[0].contains("finite difference"), "\(halved)")
    let detached = gradientProblems(inputs: [randomTensor([3, 2], seed: 6)]) { v in Variable(v[0].value) * Variable(v[0].value) }
    #expect(detached == ["input 0 got no gradient"], "\(detached)")
}
