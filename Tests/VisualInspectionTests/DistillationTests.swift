import Anomaly
import Distillation
import Evaluation
import FewShot
@_spi(Engine) import ImageIO
import ModelFile
import NeuralNet
import Synthesis
import TensorCore
import Testing
@_spi(Engine) import VisualInspection

/// A small, fast run: a compact teacher (so no principal axes are needed), tiny images.
private func tinyOptions(steps: Int, seed: UInt64 = 1) -> DistillationOptions {
    var options = DistillationOptions()
    options.steps = steps
    options.batchSize = 8
    options.imageSize = 32
    options.seed = seed
    options.learningRate = 5e-3
    options.warmupSteps = 2
    return options
}

private func teacher() -> any Backbone {
    var rng = Xoshiro256(seed: 99)
    return CompactNet(classes: 3, using: &rng)
}

@Test func shortDistillationLowersTheHeldOutLoss() {
    let run = CompactDistillation(teacher: teacher(), options: tinyOptions(steps: 60))
    let heldOut = run.heldOutBatch(count: 16)
    let before = run.loss(student: heldOut.student, teacher: heldOut.teacher, training: false).1
    var trainingLosses: [Float] = []
    run.train { trainingLosses.append($0.loss.total) }
    let after = run.loss(student: heldOut.student, teacher: heldOut.teacher, training: false).1
    #expect(trainingLosses.count == 60 && trainingLosses.allSatisfy(\.isFinite))
    #expect(after.total < 0.85 * before.total, "held-out loss \(before.total) -> \(after.total)")
    let firstTen = trainingLosses.prefix(10).reduce(0, +), lastTen = trainingLosses.suffix(10).reduce(0, +)
    #expect(lastTen < firstTen, "training loss \(firstTen / 10) -> \(lastTen / 10)")
}

@Test func distillationIsReproducibleFromItsSeed() {
    func weights(seed: UInt64) -> [Float] {
        let run = CompactDistillation(teacher: teacher(), options: tinyOptions(steps: 3, seed: seed))
        run.train()
        return run.student.namedState.flatMap { $0.variable.value.scalars }
    }
    let first = weights(seed: 4)
    #expect(first == weights(seed: 4))
    #expect(first != weights(seed: 5))
}

@Test(arguments: [(24, 32), (40, 64), (112, 128), (5, 5)])
func replicatingProjectionIsAnIsometryOntoSingleChannels(_ from: Int, _ to: Int) {
    let p = FixedProjection.replicating(from: from, to: to)
    let gram = matmul(p, p, transposeB: true)  // [from, from] must be the identity
    for i in 0..<from {
        for j in 0..<from {
            #expect(abs(gram[i, j] - (i == j ? 1 : 0)) < 1e-6, "P P^T[\(i), \(j)] = \(gram[i, j])")
        }
    }
    for j in 0..<to {
        #expect((0..<from).filter { p[$0, j] != 0 }.count == 1, "student channel \(j) copies one teacher channel")
    }
}

@Test func principalAxesFindTheHighVarianceSubspace() {
    // Data with variances 25, 16, 9 along three random orthonormal directions and 0.01
    // elsewhere, in 12 dimensions: the three axes found must span the same subspace.
    var rng = Xoshiro256(seed: 8)
    let d = 12, k = 400
    let directions = FixedProjection.orthonormalizedColumns(Tensor(randomNormal: [d, 3], using: &rng))  // [D, 3]
    let strong = Tensor(randomNormal: [k, 3], using: &rng) * Tensor([5, 4, 3] as [Float], shape: [1, 3]).broadcastRows(k)
    let samples = matmul(strong, directions, transposeB: true) + Tensor(randomNormal: [k, d], standardDeviation: 0.1, using: &rng)
    let axes = FixedProjection.principalAxes(of: samples, count: 3, seed: 2)
    #expect(axes.shape == [d, 3])
    // Each true direction lies (almost) inside the span of the axes found.
    let overlap = matmul(directions, axes, transposeA: true)  // [3, 3]
    for i in 0..<3 {
        let captured = (0..<3).reduce(Float(0)) { $0 + overlap[i, $1] * overlap[i, $1] }
        #expect(captured > 0.99, "direction \(i): \(captured) of its length in the subspace")
    }
    let gram = matmul(axes, axes, transposeA: true)
    for i in 0..<3 { for j in 0..<3 { #expect(abs(gram[i, j] - (i == j ? 1 : 0)) < 1e-5) } }
}

private extension Tensor {
    /// A `[1, C]` row repeated into `[rows, C]`.
    func broadcastRows(_ rows: Int) -> Tensor {
        Tensor((0..<rows).flatMap { _ in scalars }, shape: [rows, shape[1]])
    }
}
