@_spi(Benchmarks) import NeuralNet
import TensorCore
import Testing

/// The fused depthwise kernel (Depthwise.swift) against `referenceConv2d` plus the epilogue
/// done by hand: kernel sizes, strides, paddings (TF-SAME is asymmetric), dilation, channel
/// counts around the 8-wide blocks, spatial sizes with no interior pixels at all, windows
/// entirely in the padding, every activation, with and without bias and residual.
private func depthwiseCases(channels c: Int) -> [(ConvGeometry, String)] {
    func g(_ n: Int, _ h: Int, _ w: Int, _ k: Int, stride: Int = 1, padding: Padding, dilation: Int = 1)
        -> ConvGeometry {
        ConvGeometry(batch: n, height: h, width: w, inChannels: c, outChannels: c, kernelHeight: k, kernelWidth: k,
                     stride: (stride, stride), padding: padding, dilation: (dilation, dilation), groups: c)
    }
    return [
        (g(1, 13, 17, 3, padding: .symmetric(1)), "3x3/1 symmetric"),
        (g(2, 9, 11, 3, padding: .same), "3x3/1 same, batch 2"),
        (g(1, 14, 15, 3, stride: 2, padding: .same), "3x3/2 same"),
        (g(1, 13, 13, 3, stride: 2, padding: .symmetric(1)), "3x3/2 symmetric"),
        (g(1, 12, 19, 5, padding: .symmetric(2)), "5x5/1 symmetric"),
        (g(2, 7, 7, 5, padding: .same), "5x5/1 same 7x7, batch 2"),
        (g(1, 14, 16, 5, stride: 2, padding: .same), "5x5/2 same"),
        (g(1, 11, 13, 3, padding: .symmetric(2), dilation: 2), "3x3 dilation 2"),
        (g(1, 12, 12, 5, stride: 2, padding: .same, dilation: 2), "5x5/2 dilation 2"),
        (g(1, 1, 1, 3, padding: .same), "1x1 input"),
        (g(1, 1, 1, 5, stride: 2, padding: .same), "1x1 input 5x5/2"),
        (g(2, 2, 3, 3, padding: .same), "2x3 input"),
        (g(1, 2, 3, 5, stride: 2, padding: .same), "2x3 input 5x5/2"),
        (g(1, 7, 7, 3, padding: .valid), "7x7 valid"),
        (g(1, 10, 9, 7, padding: .symmetric(3)), "7x7 kernel (general width)"),
        (ConvGeometry(batch: 1, height: 2, width: 3, inChannels: c, outChannels: c, kernelHeight: 3, kernelWidth: 3,
                      padding: .explicit(top: 4, left: 3, bottom: 0, right: 5), groups: c), "windows in the padding"),
    ]
}

private let activations: [Activation] = [.none, .relu, .relu6, .leakyRelu(slope: 0.1), .silu]

/// Calls the kernel directly on a NaN-filled output, so an element it fails to write shows.
private func fusedDepthwise(_ x: Tensor, _ w: Tensor, _ b: Tensor?, _ r: Tensor?, _ g: ConvGeometry,
                            _ activation: Activation, pool: ThreadPool?) -> Tensor {
    var out = Tensor(repeating: .nan, shape: [g.batch, g.outHeight, g.outWidth, g.outChannels])
    out.withUnsafeMutableBufferPointer { o in
        x.withUnsafeBufferPointer { xp in
            w.withUnsafeBufferPointer { wp in
                let run = { (bp: UnsafePointer<Float>?, rp: UnsafePointer<Float>?) in
                    depthwiseConvForward(xp.baseAddress!, weight: wp.baseAddress!, bias: bp, residual: rp,
                                         output: o.baseAddress!, geometry: g, activation: activation, pool: pool)
                }
                switch (b, r) {
                case (nil, nil): run(nil, nil)
                case (let b?, nil): b.withUnsafeBufferPointer { run($0.baseAddress, nil) }
                case (nil, let r?): r.withUnsafeBufferPointer { run(nil, $0.baseAddress) }
                case (let b?, let r?):
                    b.withUnsafeBufferPointer { bp in r.withUnsafeBufferPointer { run(bp.baseAddress, $0.baseAddress) } }
                }
            }
        }
    }
    return out
}

@Test(arguments: [5, 8, 19, 32, 96])
func depthwiseKernelMatchesReference(channels: Int) {
    let pool = ThreadPool(threadCount: 2)
    for (index, (g, name)) in depthwiseCases(channels: channels).enumerated() {
        let seed = UInt64(channels * 100 + index)
        let x = randomTensor([g.batch, g.height, g.width, g.inChannels], seed: seed)
        let w = randomTensor([g.kernelHeight, g.kernelWidth, 1, g.outChannels], seed: seed + 1)
        let b = randomTensor([g.outChannels], seed: seed + 2)
        let r = randomTensor([g.batch, g.outHeight, g.outWidth, g.outChannels], seed: seed + 3)
        let plain = referenceConv2d(x, weight: w, bias: nil, geometry: g).scalars
        let tolerance = 1e-5 * Float(g.kernelHeight * g.kernelWidth).squareRoot() + 1e-6
        for activation in activations {
            for (bias, residual) in [(nil, nil), (b, nil), (nil, r), (b, r)] as [(Tensor?, Tensor?)] {
                let expected = plain.indices.map { i -> Float in
                    var v = plain[i]
                    if let bias { v += bias.scalars[i % channels] }
                    if let residual { v += residual.scalars[i] }
                    return activation.apply(v)
                }
                let label = "\(name), C \(channels), \(activation), bias \(bias != nil), residual \(residual != nil)"
                let one = fusedDepthwise(x, w, bias, residual, g, activation, pool: nil)
                let error = zip(one.scalars, expected).map { abs($0 - $1) }.max() ?? 0
                #expect(error <= tolerance, "\(label): max error \(error)")  // NaN (unwritten) fails too
                // The same kernel through conv2dForward (the dispatch) and on two threads.
                let viaConv = conv2dForward(x, weight: w, bias: bias, geometry: g, activation: activation,
                                            residual: residual, pool: pool)
                #expect(viaConv.shape == one.shape && viaConv.scalars == one.scalars, "\(label): conv2dForward differs")
            }
        }
    }
}

@Test func depthwiseKernelIsIdenticalForAnyThreadCount() {
    // Shapes where the split cuts channel chunks (7x7, few rows) and rows (28x28).
    let cases = [
        ConvGeometry(batch: 1, height: 7, width: 7, inChannels: 1152, outChannels: 1152, kernelHeight: 5,
                     kernelWidth: 5, padding: .same, groups: 1152),
        ConvGeometry(batch: 2, height: 28, width: 28, inChannels: 144, outChannels: 144, kernelHeight: 5,
                     kernelWidth: 5, stride: (2, 2), padding: .same, groups: 144),
        ConvGeometry(batch: 1, height: 30, width: 29, inChannels: 19, outChannels: 19, kernelHeight: 3,
                     kernelWidth: 3, padding: .same, groups: 19),
    ]
    for (index, g) in cases.enumerated() {
        let seed = UInt64(10 * index)
        let x = randomTensor([g.batch, g.height, g.width, g.inChannels], seed: seed)
        let w = randomTensor([g.kernelHeight, g.kernelWidth, 1, g.outChannels], seed: seed + 1)
        let b = randomTensor([g.outChannels], seed: seed + 2)
        let r = randomTensor([g.batch, g.outHeight, g.outWidth, g.outChannels], seed: seed + 3)
        for activation in [Activation.relu6, .silu] {
            let single = fusedDepthwise(x, w, b, r, g, activation, pool: nil)
            for threads in [1, 2, 3] {
                let other = fusedDepthwise(x, w, b, r, g, activation, pool: ThreadPool(threadCount: threads))
                #expect(other.scalars == single.scalars, "\(g) on \(threads) threads")
            }
        }
    }
}
