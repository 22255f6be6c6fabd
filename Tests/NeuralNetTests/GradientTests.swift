import NeuralNet
import TensorCore
import Testing

/// One convolution case for the gradient and reference tests.
struct ConvCase: Sendable, CustomTestStringConvertible {
    var name: String
    var input: [Int]          // N, H, W, Cin
    var kernel: (Int, Int)
    var outChannels: Int
    var stride: (Int, Int) = (1, 1)
    var padding: Padding = .valid
    var dilation: (Int, Int) = (1, 1)
    var groups: Int = 1
    var testDescription: String { name }
}

let convCases: [ConvCase] = [
    ConvCase(name: "3x3 pad 1", input: [2, 5, 6, 3], kernel: (3, 3), outChannels: 4, padding: .symmetric(1)),
    ConvCase(name: "3x3 stride 2 SAME", input: [1, 7, 6, 2], kernel: (3, 3), outChannels: 3, stride: (2, 2), padding: .same),
    ConvCase(name: "5x3 dilated", input: [1, 9, 8, 2], kernel: (3, 2), outChannels: 2, padding: .explicit(top: 2, left: 0, bottom: 1, right: 1), dilation: (2, 2)),
    ConvCase(name: "grouped", input: [1, 5, 5, 4], kernel: (3, 3), outChannels: 6, padding: .symmetric(1), groups: 2),
    ConvCase(name: "depthwise 3x3 stride 2", input: [2, 7, 7, 5], kernel: (3, 3), outChannels: 5, stride: (2, 2), padding: .same, groups: 5),
    ConvCase(name: "depthwise 5x5 17ch", input: [1, 6, 5, 17], kernel: (5, 5), outChannels: 17, padding: .symmetric(2), groups: 17),
    ConvCase(name: "pointwise", input: [2, 3, 4, 5], kernel: (1, 1), outChannels: 7),
    ConvCase(name: "7x7 stride 2 pad 3", input: [1, 9, 9, 3], kernel: (7, 7), outChannels: 2, stride: (2, 2), padding: .symmetric(3)),
]

@Test(arguments: convCases)
func conv2dGradients(_ c: ConvCase) {
    let weightShape = [c.kernel.0, c.kernel.1, c.input[3] / c.groups, c.outChannels]
    checkGradients(c.name, inputs: [randomTensor(c.input, seed: 1), randomTensor(weightShape, seed: 2, scale: 0.5),
                                    randomTensor([c.outChannels], seed: 3)]) { v in
        conv2d(v[0], weight: v[1], bias: v[2], stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups)
    }
}

@Test func batchNormGradientsInTrainingAndInference() {
    let stats = BatchNormStatistics(channels: 3)
    let inputs = [randomTensor([2, 3, 4, 3], seed: 4, scale: 2), randomTensor([3], seed: 5), randomTensor([3], seed: 6)]
    checkGradients("batchNorm training", inputs: inputs) { v in
        batchNorm(v[0], gamma: v[1], beta: v[2], statistics: stats, training: true)
    }
    stats.mean.value = randomTensor([3], seed: 7)
    stats.variance.value = Tensor([0.5, 1.5, 2.0], shape: [3])
    checkGradients("batchNorm inference", inputs: inputs) { v in
        batchNorm(v[0], gamma: v[1], beta: v[2], statistics: stats, training: false)
    }
}

@Test(arguments: [Activation.relu, .relu6, .leakyRelu(slope: 0.1), .silu, .none])
func activationGradients(_ kind: Activation) {
    checkGradients("\(kind)", inputs: [awayFromKinks([3, 17], kinks: [0, 6], seed: 8)]) { v in activation(v[0], kind) }
}

@Test func poolingGradients() {
    // Distinct values spaced well apart, so no step changes which input wins a max window.
    var rng = Xoshiro256(seed: 9)
    let values = (0..<(2 * 7 * 6 * 3)).map { Float($0) * 0.1 }.shuffled(using: &rng)
    let distinct = Tensor(values, shape: [2, 7, 6, 3])
    checkGradients("maxPool 3x3/2 pad 1", inputs: [distinct]) { v in
        maxPool2d(v[0], kernel: (3, 3), stride: (2, 2), padding: .symmetric(1))
    }
    let x = randomTensor([2, 7, 6, 3], seed: 10)
    checkGradients("avgPool count padding", inputs: [x]) { v in
        avgPool2d(v[0], kernel: (3, 3), stride: (2, 2), padding: .symmetric(1), countPadding: true)
    }
    checkGradients("avgPool exclude padding", inputs: [x]) { v in
        avgPool2d(v[0], kernel: (3, 3), stride: (1, 1), padding: .symmetric(1), countPadding: false)
    }
    checkGradients("adaptiveAvgPool 7x6 -> 3x4", inputs: [x]) { v in adaptiveAvgPool2d(v[0], outHeight: 3, outWidth: 4) }
    checkGradients("globalAvgPool", inputs: [x]) { v in globalAvgPool(v[0]) }
}

@Test func resizeAndConcatGradients() {
    let x = randomTensor([1, 4, 5, 2], seed: 11)
    checkGradients("bilinear up", inputs: [x]) { v in bilinearResize(v[0], height: 9, width: 7) }
    checkGradients("bilinear down", inputs: [x]) { v in bilinearResize(v[0], height: 3, width: 2) }
    checkGradients("concat", inputs: [x, randomTensor([1, 4, 5, 3], seed: 12)]) { v in concatChannels([v[0], v[1]]) }
}

@Test func arithmeticAndMatrixGradients() {
    let a = randomTensor([4, 3], seed: 13), b = randomTensor([4, 3], seed: 14)
    checkGradients("add", inputs: [a, b]) { v in v[0] + v[1] }
    checkGradients("subtract", inputs: [a, b]) { v in v[0] - v[1] }
    checkGradients("multiply", inputs: [a, b]) { v in v[0] * v[1] }
    checkGradients("scale", inputs: [a]) { v in 2.5 * v[0] }
    checkGradients("reshape", inputs: [a]) { v in v[0].reshaped([2, 6]) * v[0].reshaped([2, 6]) }
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let left = ta ? randomTensor([5, 4], seed: 15) : randomTensor([4, 5], seed: 15)
        let right = tb ? randomTensor([3, 5], seed: 16) : randomTensor([5, 3], seed: 16)
        checkGradients("matmul \(ta) \(tb)", inputs: [left, right]) { v in matmul(v[0], v[1], transposeA: ta, transposeB: tb) }
    }
    checkGradients("linear", inputs: [randomTensor([4, 5], seed: 17), randomTensor([3, 5], seed: 18), randomTensor([3], seed: 19)]) { v in
        linear(v[0], weight: v[1], bias: v[2])
    }
    checkGradients("sum and mean", inputs: [a]) { v in v[0].sum() + v[0].mean() }
}

@Test func lossGradients() {
    let logits = randomTensor([5, 4], seed: 20, scale: 2)
    checkGradients("logSoftmax", inputs: [logits]) { v in logSoftmax(v[0]) }
    checkGradients("crossEntropy", inputs: [logits]) { v in crossEntropy(v[0], labels: [0, 3, 1, 1, 2]) }
    let a = randomTensor([5, 3], seed: 21), b = randomTensor([4, 3], seed: 22)
    checkGradients("squaredDistances", inputs: [a, b]) { v in squaredDistances(v[0], v[1]) }
    checkGradients("classMeans", inputs: [a]) { v in classMeans(v[0], labels: [0, 1, 0, 2, 1], classes: 3) }
    checkGradients("l2Normalized", inputs: [a]) { v in l2Normalized(v[0]) }
    // The target is a constant: only x gets a gradient. Shapes of a feature map, where the
    // distillation uses it, and of an embedding batch.
    let target = randomTensor([2, 3, 4, 5], seed: 26)
    checkGradients("sumOfSquaredErrors map", inputs: [randomTensor([2, 3, 4, 5], seed: 27)]) { v in
        sumOfSquaredErrors(v[0], target: target)
    }
    checkGradients("sumOfSquaredErrors rows", inputs: [a]) { v in sumOfSquaredErrors(v[0], target: randomTensor([5, 3], seed: 28)) }
}

@Test func projectionHeadOperationGradients() {
    checkGradients("scaledColumns", inputs: [randomTensor([5, 7], seed: 30), randomTensor([7], seed: 31)]) { v in
        scaledColumns(v[0], v[1])
    }
}

@Test func dropoutGradientUsesTheSameMask() {
    checkGradients("dropout", inputs: [randomTensor([6, 7], seed: 25)]) { v in
        var rng = Xoshiro256(seed: 26)  // the same mask on every evaluation
        return dropout(v[0], rate: 0.3, training: true, using: &rng)
    }
}

@Test func gradientsAccumulateOverSharedUses() {
    // y = x * x + x: dy/dx = 2x + 1, with x used three times.
    let x = Variable(Tensor([1, -2, 3], shape: [3]), requiresGradient: true)
    (x * x + x).sum().backward()
    #expect(x.gradient?.scalars == [3, -3, 7])
    // A second backward adds to the first.
    (x * x + x).sum().backward()
    #expect(x.gradient?.scalars == [6, -6, 14])
}

@Test func inferenceOperationsOnTensorsEqualTheirAutogradForms() {
    // Pooling, resizing and concatenation called on tensors (what inference uses, no graph)
    // give exactly the values of the differentiable forms.
    let x = randomTensor([2, 7, 5, 3], seed: 40), y = randomTensor([2, 7, 5, 4], seed: 41)
    #expect(avgPool2d(x, kernel: (3, 3), stride: (1, 1), padding: .symmetric(1), countPadding: false).scalars
        == avgPool2d(Variable(x), kernel: (3, 3), stride: (1, 1), padding: .symmetric(1), countPadding: false).value.scalars)
    #expect(avgPool2d(x, kernel: (2, 2), stride: (2, 2)).scalars == avgPool2d(Variable(x), kernel: (2, 2), stride: (2, 2)).value.scalars)
    #expect(globalAvgPool(x).shape == [2, 3] && globalAvgPool(x).scalars == globalAvgPool(Variable(x)).value.scalars)
    #expect(bilinearResize(x, height: 11, width: 4).scalars == bilinearResize(Variable(x), height: 11, width: 4).value.scalars)
    let joined = concatChannels([x, y])
    #expect(joined.shape == [2, 7, 5, 7] && joined.scalars == concatChannels([Variable(x), Variable(y)]).value.scalars)
}

@Test func aNetworkBuiltForLoadedWeightsDrawsNoneAndLoadsTheSame() throws {
    // Built with Xoshiro256.weightsToBeLoaded, a network's initial weights are zeros (not
    // drawn); once the state of a seeded network is loaded, it computes what that one does.
    var placeholder = Xoshiro256.weightsToBeLoaded
    #expect(placeholder.isWeightsToBeLoaded && !Xoshiro256(seed: 0).isWeightsToBeLoaded)
    #expect(Tensor(randomNormal: [3, 4], using: &placeholder).scalars.allSatisfy { $0 == 0 })
    let seeded = BackboneArchitecture.compact.make(classes: 10, seed: 3)
    let loaded = BackboneArchitecture.compact.make(classes: 10, using: &placeholder)
    try loaded.loadState(seeded.stateDictionary())
    let input = randomTensor([1, 64, 64, 3], seed: 9)
    #expect(seeded.frozen().features(input, pool: nil).embedding.scalars == loaded.frozen().features(input, pool: nil).embedding.scalars)
}
