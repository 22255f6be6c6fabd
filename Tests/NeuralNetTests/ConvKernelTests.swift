import NeuralNet
import TensorCore
import Testing

/// Tuned convolution kernels against the plain reference, at sizes that hit every edge:
/// channel counts around the SIMD width, odd spatial sizes, padding on one side only.
@Test(arguments: [1, 15, 16, 17, 33])
func convolutionMatchesReference(channels: Int) {
    let cases: [(ConvGeometry, String)] = [
        (ConvGeometry(batch: 2, height: 9, width: 7, inChannels: channels, outChannels: 5,
                      kernelHeight: 3, kernelWidth: 3, padding: .symmetric(1)), "3x3"),
        (ConvGeometry(batch: 1, height: 11, width: 10, inChannels: channels, outChannels: 17,
                      kernelHeight: 3, kernelWidth: 3, stride: (2, 2), padding: .same), "3x3/2 SAME"),
        (ConvGeometry(batch: 1, height: 6, width: 5, inChannels: channels, outChannels: 16,
                      kernelHeight: 1, kernelWidth: 1), "1x1"),
        (ConvGeometry(batch: 2, height: 9, width: 8, inChannels: channels, outChannels: channels,
                      kernelHeight: 5, kernelWidth: 5, stride: (2, 2), padding: .same, groups: channels), "depthwise 5x5/2"),
        (ConvGeometry(batch: 1, height: 7, width: 7, inChannels: channels, outChannels: channels,
                      kernelHeight: 3, kernelWidth: 3, padding: .symmetric(2), dilation: (2, 2), groups: channels), "depthwise dilated"),
    ]
    for (g, name) in cases {
        let x = randomTensor([g.batch, g.height, g.width, g.inChannels], seed: UInt64(channels))
        let w = randomTensor([g.kernelHeight, g.kernelWidth, g.groupInChannels, g.outChannels], seed: 99)
        let b = randomTensor([g.outChannels], seed: 7)
        let expected = referenceConv2d(x, weight: w, bias: b, geometry: g)
        for pool in [nil, ThreadPool(threadCount: 2)] as [ThreadPool?] {
            let actual = conv2dForward(x, weight: w, bias: b, geometry: g, pool: pool)
            #expect(actual.shape == expected.shape, "\(name)")
            let error = zip(actual.scalars, expected.scalars).map { abs($0 - $1) }.max() ?? 0
            #expect(error < 1e-4 * Float(g.kernelHeight * g.kernelWidth * g.groupInChannels).squareRoot(),
                    "\(name) with \(channels) channels: max error \(error)")
        }
    }
}

@Test func fusedEpilogueAddsResidualThenActivates() {
    let g = ConvGeometry(batch: 1, height: 4, width: 4, inChannels: 3, outChannels: 2, kernelHeight: 3, kernelWidth: 3,
                         padding: .symmetric(1))
    let x = randomTensor([1, 4, 4, 3], seed: 1), w = randomTensor([3, 3, 3, 2], seed: 2)
    let b = randomTensor([2], seed: 3), r = randomTensor([1, 4, 4, 2], seed: 4)
    let fused = conv2dForward(x, weight: w, bias: b, geometry: g, activation: .relu6, residual: r)
    let plain = referenceConv2d(x, weight: w, bias: b, geometry: g)
    let expected = zip(plain.scalars, r.scalars).map { Activation.relu6.apply($0 + $1) }
    let error = zip(fused.scalars, expected).map { abs($0 - $1) }.max() ?? 0
    #expect(error < 1e-5)
}

@Test func samePaddingPutsTheExtraRowAtTheBottomRight() {
    // TF SAME, 3x3 stride 2 on 224: output 112, total padding 1 -> (0, 0, 1, 1).
    let pads = Padding.same.resolve(height: 224, width: 224, kernel: (3, 3), stride: (2, 2))
    #expect(pads == (0, 0, 1, 1))
    let odd = Padding.same.resolve(height: 7, width: 7, kernel: (5, 5), stride: (1, 1))
    #expect(odd == (2, 2, 2, 2))
    let g = ConvGeometry(batch: 1, height: 224, width: 224, inChannels: 3, outChannels: 32, kernelHeight: 3,
                         kernelWidth: 3, stride: (2, 2), padding: .same)
    #expect(g.outHeight == 112 && g.outWidth == 112)
}

@Test func convolutionIsIdenticalForOneAndTwoThreads() {
    let g = ConvGeometry(batch: 2, height: 13, width: 11, inChannels: 24, outChannels: 40, kernelHeight: 3,
                         kernelWidth: 3, stride: (2, 2), padding: .same)
    let x = randomTensor([2, 13, 11, 24], seed: 5), w = randomTensor([3, 3, 24, 40], seed: 6)
    let one = conv2dForward(x, weight: w, bias: nil, geometry: g, pool: ThreadPool(threadCount: 1))
    let two = conv2dForward(x, weight: w, bias: nil, geometry: g, pool: ThreadPool(threadCount: 2))
    #expect(one.scalars == two.scalars)
}

@Test func inferenceMaxPoolMatchesTheTrainingKernel() {
    for channels in [1, 16, 17, 64] {
        let x = randomTensor([2, 9, 8, channels], seed: UInt64(channels))
        let frozen = FrozenLayer.maxPool(kernel: 3, stride: 2, padding: .symmetric(1))(x, pool: ThreadPool(threadCount: 2))
        let reference = maxPool2d(Variable(x), kernel: (3, 3), stride: (2, 2), padding: .symmetric(1)).value
        #expect(frozen == reference, "\(channels) channels")
    }
}
