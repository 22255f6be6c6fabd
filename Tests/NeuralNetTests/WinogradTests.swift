import NeuralNet
import TensorCore
import Testing

// Winograd F(2x2, 3x3) against the Double reference convolution.
//
// Error bound: |y - reference| <= 1e-5 * max|reference| per output tensor. Why that is
// safe and still tight enough to catch a wrong transform: the transforms have coefficients
// 0, +-1 and +-1/2, so an input-transform value is a sum of at most 4 inputs (|V| <= 4 max|d|),
// a filter-transform value at most 9/4 max|g|, and the output transform sums at most 9 of the
// 16 products; the rounding of a K = 9 Cin term dot product in fp32 grows like
// eps * sqrt(K) * (sum of |terms|) for random data, so with eps = 6e-8, the <= 36x magnitude
// growth of the transforms and K <= 2700 here, the worst case stays around 1e-6 of the
// output scale (measured: up to 3e-6 with 3-5 channels, where the output transform cancels
// the most, 2e-7 to 5e-7 at 64-300 channels). A wrong coefficient or misplaced tile gives errors of
// order 1e-1 relative.
//
// F(4x4, 3x3) gets 5e-5: its B, A and G scale by up to 5, 8 and 1/24, so the fp32 products
// carry ~30x larger absolute rounding errors that cancel in A^T m A (measured: 2.7e-6 and
// 4.7e-6 at 64 and 300 channels, up to 4.1e-5 with 3-5 channels, where the output is a sum of
// few terms and its max is small against the transformed intermediates).
private func bound(_ tile: WinogradTile) -> Float { tile == .f2x2 ? 1e-5 : 5e-5 }

/// Every combination of epilogue the fused output transform can take.
private let epilogues: [(Activation, Bool, Bool)] = [
    (.none, false, false), (.none, true, false), (.relu, true, true), (.relu6, false, true),
    (.leakyRelu(slope: 0.1), true, false), (.silu, true, true),
]

private func expectedOutput(_ x: Tensor, _ w: Tensor, _ b: Tensor?, _ r: Tensor?, _ g: ConvGeometry,
                            _ activation: Activation) -> [Float] {
    let plain = referenceConv2d(x, weight: w, bias: b, geometry: g).scalars
    guard let r else { return plain.map { activation.apply($0) } }
    return zip(plain, r.scalars).map { activation.apply($0 + $1) }
}

/// Max |a - b| relative to max |b| (the output's scale), with the scale floored at 1e-30.
private func relativeError(_ actual: [Float], _ expected: [Float]) -> Float {
    let scale = max(expected.map { abs($0) }.max() ?? 0, 1e-30)
    return (zip(actual, expected).map { abs($0 - $1) }.max() ?? 0) / scale
}

private let paddings: [Padding] = [
    .valid, .symmetric(1), .explicit(top: 1, left: 0, bottom: 2, right: 1), .explicit(top: 0, left: 2, bottom: 1, right: 0),
]

/// Winograd against the reference, at the awkward sizes and every epilogue.
struct WinogradTests {
    @Test(arguments: [WinogradTile.f2x2, .f4x4], [(1, 1), (2, 3), (5, 7), (13, 13), (8, 8)])
    func winogradMatchesReference(tile: WinogradTile, size: (Int, Int)) {
        let (height, width) = size
        let pool = ThreadPool(threadCount: 2)
        var worst: Float = 0
        for (cin, cout) in [(3, 5), (5, 17), (17, 40), (40, 3), (8, 24), (24, 64)] {
            for (pi, padding) in paddings.enumerated() {
                // A valid 3x3 needs at least 3x3 input after padding.
                let padded = padding.resolve(height: height, width: width, kernel: (3, 3), stride: (1, 1))
                guard height + padded.0 + padded.2 >= 3 && width + padded.1 + padded.3 >= 3 else { continue }
                let g = ConvGeometry(batch: 2, height: height, width: width, inChannels: cin, outChannels: cout,
                                     kernelHeight: 3, kernelWidth: 3, padding: padding)
                let seed = UInt64(height * 1000 + width * 100 + cin * 10 + pi)
                let x = randomTensor([2, height, width, cin], seed: seed)
                let w = randomTensor([3, 3, cin, cout], seed: seed + 1)
                let b = randomTensor([cout], seed: seed + 2)
                let r = randomTensor([2, g.outHeight, g.outWidth, cout], seed: seed + 3)
                let u = WinogradWeights(w, tile: tile)
                for (activation, useBias, useResidual) in epilogues {
                    let bias = useBias ? b : nil, residual = useResidual ? r : nil
                    let expected = expectedOutput(x, w, bias, residual, g, activation)
                    for p in [nil, pool] as [ThreadPool?] {
                        let actual = winogradConv3x3(x, weights: u, bias: bias, geometry: g, activation: activation,
                                                     residual: residual, pool: p)
                        #expect(actual.shape == [2, g.outHeight, g.outWidth, cout])
                        let error = relativeError(actual.scalars, expected)
                        worst = max(worst, error)
                        #expect(error <= bound(tile), "\(g), \(activation), bias \(useBias), residual \(useResidual): \(error)")
                    }
                }
            }
        }
        print("winograd \(tile) \(height)x\(width): worst relative error \(worst)")
    }

    /// More than one K chunk (Cin > 256), several tile blocks with a short last one, and a
    /// ResNet-like shape.
    @Test(arguments: [WinogradTile.f2x2, .f4x4], [(300, 40, 5, 6), (16, 32, 40, 37), (64, 64, 14, 14)])
    func winogradMatchesReferenceOnLargerShapes(tile: WinogradTile, shape: (Int, Int, Int, Int)) {
        let (cin, cout, height, width) = shape
        let g = ConvGeometry(batch: 1, height: height, width: width, inChannels: cin, outChannels: cout,
                             kernelHeight: 3, kernelWidth: 3, padding: .symmetric(1))
        let x = randomTensor([1, height, width, cin], seed: 11)
        let w = randomTensor([3, 3, cin, cout], seed: 12, scale: 0.05)
        let b = randomTensor([cout], seed: 13)
        let r = randomTensor([1, height, width, cout], seed: 14)
        let expected = expectedOutput(x, w, b, r, g, .relu)
        let actual = winogradConv3x3(x, weights: WinogradWeights(w, tile: tile), bias: b, geometry: g, activation: .relu,
                                     residual: r, pool: ThreadPool(threadCount: 2))
        let error = relativeError(actual.scalars, expected)
        print("winograd \(tile) \(g): relative error \(error)")
        #expect(error <= bound(tile), "\(g): \(error)")
    }

    /// The same bits for 1 and 2 threads, both when threads split tile blocks and when a
    /// single tile block is split by output-channel panels.
    @Test(arguments: [WinogradTile.f2x2, .f4x4], [(40, 40, 16, 32), (1, 1, 24, 100), (2, 2, 64, 128)])
    func winogradIsIdenticalForOneAndTwoThreads(tile: WinogradTile, shape: (Int, Int, Int, Int)) {
        let (height, width, cin, cout) = shape
        let g = ConvGeometry(batch: 2, height: height, width: width, inChannels: cin, outChannels: cout,
                             kernelHeight: 3, kernelWidth: 3, padding: .symmetric(1))
        let x = randomTensor([2, height, width, cin], seed: 21)
        let u = WinogradWeights(randomTensor([3, 3, cin, cout], seed: 22), tile: tile)
        let b = randomTensor([cout], seed: 23)
        let one = winogradConv3x3(x, weights: u, bias: b, geometry: g, activation: .silu, pool: nil)
        let two = winogradConv3x3(x, weights: u, bias: b, geometry: g, activation: .silu, pool: ThreadPool(threadCount: 2))
        #expect(one.scalars == two.scalars)
    }
}
