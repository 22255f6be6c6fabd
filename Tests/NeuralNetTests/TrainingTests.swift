import NeuralNet
import TensorCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Test func sgdWithMomentumMinimisesAQuadratic() {
    // f(w) = sum((w - target)^2): SGD with momentum must reach the target.
    let target = Tensor([1, -2, 3, 0.5], shape: [2, 2])
    let w = Variable(Tensor(zeros: [2, 2]), requiresGradient: true)
    let optimizer = SGD(parameters: [w], learningRate: 0.05, momentum: 0.9)
    for _ in 0..<200 {
        optimizer.zeroGradients()
        let d = w - Variable(target)
        (d * d).sum().backward()
        optimizer.step()
    }
    let error = zip(w.value.scalars, target.scalars).map { abs($0 - $1) }.max()!
    #expect(error < 1e-3)
}

@Test func adamWFirstStepMovesEachWeightByTheLearningRate() {
    // With bias correction, Adam's first step is lr * sign(g) (plus decoupled decay).
    let w = Variable(Tensor([1, -1, 2], shape: [3, 1]), requiresGradient: true)
    w.gradient = Tensor([0.5, -3, 0], shape: [3, 1])
    let optimizer = AdamW(parameters: [w], learningRate: 0.1, weightDecay: 0.5)
    optimizer.step()
    let expected: [Float] = [1 - 0.1 * (1 + 0.5 * 1), -1 - 0.1 * (-1 + 0.5 * -1), 2 - 0.1 * (0 + 0.5 * 2)]
    let error = zip(w.value.scalars, expected).map { abs($0 - $1) }.max()!
    #expect(error < 1e-5, "\(w.value.scalars) vs \(expected)")
}

@Test func cosineScheduleWarmsUpThenDecays() {
    let schedule = CosineSchedule(base: 1, minimum: 0.1, warmup: 4, total: 14)
    #expect(schedule.rate(at: 0) == 0.25)
    #expect(schedule.rate(at: 3) == 1)
    #expect(abs(schedule.rate(at: 9) - 0.55) < 1e-6)   // half way: (1 + 0.1) / 2
    #expect(abs(schedule.rate(at: 14) - 0.1) < 1e-6)
    #expect(abs(schedule.rate(at: 100) - 0.1) < 1e-6)
}

@Test func geometricAugmentationsAreExactWhereTheyShouldBe() {
    let image = randomTensor([6, 6, 2], seed: 1)
    #expect(flipped(flipped(image, horizontal: true), horizontal: true) == image)
    #expect(flipped(flipped(image, horizontal: false), horizontal: false) == image)
    #expect(rotated90(image, times: 4) == image)
    #expect(rotated90(rotated90(image, times: 1), times: 3) == image)
    // A quarter turn counter-clockwise moves the top-right corner to the top-left.
    #expect(rotated90(image, times: 1)[0, 0, 0] == image[0, 5, 0])
    let same = warp(image, scale: (1, 1), angle: 0, shift: (0, 0))
    #expect(zip(same.scalars, image.scalars).allSatisfy { abs($0 - $1) < 1e-6 })
    // A whole-pixel shift moves content by one pixel.
    let shifted = warp(image, scale: (1, 1), angle: 0, shift: (0, 1))
    #expect(abs(shifted[2, 2, 1] - image[2, 3, 1]) < 1e-6)
}

@Test func augmentationIsReproducibleFromItsSeed() {
    let image = randomTensor([8, 8, 3], seed: 2)
    var a = Xoshiro256(seed: 5), b = Xoshiro256(seed: 5), c = Xoshiro256(seed: 6)
    let augmentation = Augmentation.anyOrientation
    let first = augmentation(image, using: &a), second = augmentation(image, using: &b)
    #expect(first == second)
    #expect(first.shape == image.shape)
    #expect(augmentation(image, using: &c) != first)
}

/// Procedural 32x32 textures of four kinds: horizontal stripes, vertical stripes, a
/// checkerboard and scattered spots, each with random phase, frequency and noise.
func texture(kind: Int, size: Int = 32, using rng: inout Xoshiro256) -> Tensor {
    let period = Float.random(in: 5...9, using: &rng), phase = Float.random(in: 0...(2 * .pi), using: &rng)
    var spots: [(Float, Float)] = []
    for _ in 0..<6 { spots.append((Float.random(in: 0..<Float(size), using: &rng), Float.random(in: 0..<Float(size), using: &rng))) }
    var values = [Float]()
    for y in 0..<size {
        for x in 0..<size {
            let (fy, fx) = (Float(y), Float(x))
            var v: Float
            switch kind {
            case 0: v = sin(2 * .pi * fy / period + phase)
            case 1: v = sin(2 * .pi * fx / period + phase)
            case 2: v = sin(2 * .pi * fx / period + phase) * sin(2 * .pi * fy / period + phase)
            default: v = spots.map { exp(-(($0.0 - fy) * ($0.0 - fy) + ($0.1 - fx) * ($0.1 - fx)) / 6) }.max()! * 2 - 1
            }
            v += rng.nextStandardNormal() * 0.3
            values += [v, v, v]
        }
    }
    return Tensor(values, shape: [size, size, 3])
}

func batch(_ images: [Tensor]) -> Tensor {
    let shape = images[0].shape
    return Tensor(images.flatMap(\.scalars), shape: [images.count] + shape)
}

/// The compact network, from scratch, learns four procedural texture classes to high
/// accuracy on held-out images within a few hundred steps.
@Test(.timeLimit(.minutes(5)))
func compactNetworkLearnsGeneratedTexturesFromScratch() {
    var rng = Xoshiro256(seed: 2026)
    let network = CompactNet(classes: 4, using: &rng)
    let optimizer = AdamW(parameters: network.parameters, learningRate: 3e-3, weightDecay: 1e-4)
    let steps = 120, batchSize = 32
    let schedule = CosineSchedule(base: 3e-3, minimum: 1e-4, warmup: 10, total: steps)
    var firstLoss: Float = 0, lastLoss: Float = 0
    for step in 0..<steps {
        let labels = (0..<batchSize).map { _ in Int.random(in: 0..<4, using: &rng) }
        let images = batch(labels.map { texture(kind: $0, using: &rng) })
        optimizer.learningRate = schedule.rate(at: step)
        optimizer.zeroGradients()
        let loss = crossEntropy(network.forward(Variable(images), training: true).logits!, labels: labels)
        loss.backward()
        optimizer.step()
        if step == 0 { firstLoss = loss.value.scalars[0] }
        lastLoss = loss.value.scalars[0]
    }
    var test = Xoshiro256(seed: 99)
    let labels = (0..<200).map { $0 % 4 }
    let logits = network.frozen().features(batch(labels.map { texture(kind: $0, using: &test) })).logits!
    let predicted = logits.argmax(alongAxis: 1)
    let accuracy = Double(zip(predicted, labels).filter { $0 == $1 }.count) / Double(labels.count)
    print("compact network from scratch: loss \(firstLoss) -> \(lastLoss), held-out accuracy \(accuracy)")
    #expect(accuracy >= 0.95)
    #expect(lastLoss < firstLoss / 4)
}
