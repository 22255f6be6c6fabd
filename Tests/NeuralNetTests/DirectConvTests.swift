import NeuralNet
import TensorCore
import Testing

/// The direct convolution kernel against the reference at shapes that exercise each of its
/// paths: reduction chunks made of several taps and of channel ranges of one tap, output
/// channel panels of 24, 16 and 8 (``PackedConvWeights/panelWidths(_:)``, padded tails), pixel counts that are not a multiple of
/// the 4-pixel tile, stride, dilation and one-sided padding, and every epilogue.
@Test(arguments: [
    // (height, width, Cin, Cout, kernel, stride, dilation, padding)
    (5, 7, 3, 8, 7, 2, 1, Padding.symmetric(3)),       // stem-like, Cin 3, 8-wide panel only
    (6, 5, 100, 40, 3, 1, 1, Padding.symmetric(1)),    // 2 taps per chunk, 24 + 16-column tail
    (4, 3, 300, 49, 3, 1, 1, Padding.same),            // 2 channel parts per tap, tail of 1
    (7, 7, 64, 64, 3, 2, 1, Padding.same),             // stride 2, TF-same (bottom/right)
    (9, 6, 17, 33, 3, 1, 2, Padding.symmetric(2)),     // dilation 2, tail of 9
    (3, 3, 520, 16, 1, 1, 1, Padding.valid),           // pointwise, 3 channel parts
    (1, 1, 8, 24, 1, 1, 1, Padding.valid),             // one pixel
    (7, 9, 3, 32, 3, 2, 1, Padding.symmetric(1)),      // Lite0-like stem, 16 + 16 panels
    (5, 6, 32, 16, 1, 1, 1, Padding.valid),            // pointwise, one 16-wide panel
    (5, 5, 24, 57, 1, 1, 1, Padding.valid),            // 24 + 24 + a 16-wide panel holding the last 9
    (4, 5, 40, 12, 3, 1, 1, Padding.symmetric(1)),     // 16-wide panel with 12 valid columns
    (21, 19, 24, 40, 1, 1, 1, Padding.valid),          // pointwise split between 2 threads, last tile of 2 pixels
    (12, 14, 20, 24, 3, 1, 1, Padding.symmetric(1)),   // runs of interior tiles between border tiles
    (15, 17, 16, 40, 3, 2, 1, Padding.symmetric(1)),   // the same with stride 2
    (9, 9, 300, 500, 1, 1, 1, Padding.valid),          // weights past L2 per chunk: prefetched in every block of tiles
])
func directConvolutionMatchesReference(
    shape: (Int, Int, Int, Int, Int, Int, Int, Padding)
) {
    checkDirectConvolution(batch: 2, shape: shape)
}

/// Maps of 4k + 1 pixels (7 x 7 at batch 1): the last tile holds one pixel, which 24-wide
/// panels compute on their own, two at a time as the panel loop finishes them
/// (`Accumulators24.singlePixel`), pointwise with two reduction chunks and a depth that is
/// not a multiple of 4, and 3x3 through the pointer table; odd counts of 24-wide panels.
@Test(arguments: [
    (7, 7, 301, 48, 1, 1, 1, Padding.valid),
    (7, 7, 13, 24, 3, 1, 1, Padding.symmetric(1)),
    (3, 3, 30, 40, 1, 1, 1, Padding.valid),            // 24 + 16 panels, 9 pixels
    (7, 7, 40, 88, 1, 1, 1, Padding.valid),            // 24 + 24 + 24 + 16: a pair, then the third 24 alone
    (7, 7, 9, 72, 3, 1, 1, Padding.symmetric(1)),      // three 24-wide panels through the pointer table
])
func directConvolutionOfOnePixelTilesMatchesReference(shape: (Int, Int, Int, Int, Int, Int, Int, Padding)) {
    checkDirectConvolution(batch: 1, shape: shape)
    // Bit for bit what the same pixel gets inside a full tile (image 0 of a batch of 2,
    // whose last pixel shares a tile with image 1): band-by-band blocks rely on it.
    let (h, w, cin, cout, k, s, d, padding) = shape
    let two = ConvGeometry(batch: 2, height: h, width: w, inChannels: cin, outChannels: cout, kernelHeight: k,
                           kernelWidth: k, stride: (s, s), padding: padding, dilation: (d, d))
    let x = randomTensor([2, h, w, cin], seed: 21), weight = randomTensor([k, k, cin, cout], seed: 22)
    let bias = randomTensor([cout], seed: 23)
    let pair = conv2dForward(x, weight: weight, bias: bias, geometry: two, activation: .relu6, pool: nil)
    var one = two
    one.batch = 1
    let first = Tensor(Array(x.scalars[0..<(h * w * cin)]), shape: [1, h, w, cin])
    let alone = conv2dForward(first, weight: weight, bias: bias, geometry: one, activation: .relu6, pool: nil)
    #expect(alone.scalars == Array(pair.scalars[0..<alone.scalars.count]))
}

private func checkDirectConvolution(batch: Int, shape: (Int, Int, Int, Int, Int, Int, Int, Padding)) {
    let (h, w, cin, cout, k, s, d, padding) = shape
    let g = ConvGeometry(batch: batch, height: h, width: w, inChannels: cin, outChannels: cout, kernelHeight: k,
                         kernelWidth: k, stride: (s, s), padding: padding, dilation: (d, d))
    let x = randomTensor([batch, h, w, cin], seed: UInt64(cin))
    let weight = randomTensor([k, k, cin, cout], seed: UInt64(cout))
    let b = randomTensor([cout], seed: 3)
    let r = randomTensor([batch, g.outHeight, g.outWidth, cout], seed: 4)
    let plain = referenceConv2d(x, weight: weight, bias: nil, geometry: g)
    let packed = PackedConvWeights(weight)
    let bound = 2e-6 * Float(k * k * cin).squareRoot() * 4
    for activation in [Activation.none, .relu, .relu6, .leakyRelu(slope: 0.1), .silu] {
        for (bias, residual) in [(nil, nil), (b, nil), (b, r), (nil, r)] as [(Tensor?, Tensor?)] {
            var expected = plain.scalars
            for i in expected.indices {
                var v = expected[i]
                if let bias { v += bias.scalars[i % cout] }
                if let residual { v += residual.scalars[i] }
                expected[i] = activation.apply(v)
            }
            let one = conv2dForward(x, weight: weight, bias: bias, geometry: g, activation: activation,
                                    residual: residual, pool: nil, packed: packed)
            let two = conv2dForward(x, weight: weight, bias: bias, geometry: g, activation: activation,
                                    residual: residual, pool: ThreadPool(threadCount: 2))
            let error = zip(one.scalars, expected).map { abs($0 - $1) }.max() ?? 0
            #expect(error < bound, "\(g) \(activation) bias \(bias != nil) residual \(residual != nil): error \(error)")
            #expect(one.scalars == two.scalars, "\(g) \(activation): 1 and 2 threads differ")
        }
    }
}

/// Big enough that two threads really split the pixels (small problems run on one).
@Test func directConvolutionSplitsPixelsDeterministically() {
    let g = ConvGeometry(batch: 1, height: 30, width: 29, inChannels: 48, outChannels: 56, kernelHeight: 3,
                         kernelWidth: 3, padding: .symmetric(1))
    let x = randomTensor([1, 30, 29, 48], seed: 8), w = randomTensor([3, 3, 48, 56], seed: 9)
    let b = randomTensor([56], seed: 10)
    let one = conv2dForward(x, weight: w, bias: b, geometry: g, activation: .relu, pool: nil)
    let two = conv2dForward(x, weight: w, bias: b, geometry: g, activation: .relu, pool: ThreadPool(threadCount: 2))
    let three = conv2dForward(x, weight: w, bias: b, geometry: g, activation: .relu, pool: ThreadPool(threadCount: 3))
    #expect(one.scalars == two.scalars && one.scalars == three.scalars)
    let reference = referenceConv2d(x, weight: w, bias: b, geometry: g).scalars.map { max($0, 0) }
    let error = zip(one.scalars, reference).map { abs($0 - $1) }.max() ?? 0
    #expect(error < 1e-4)
    // The im2col + sgemm path computes the same convolution.
    let gemm = conv2dForwardGEMM(x, weight: w, bias: b, geometry: g, activation: .relu, pool: nil)
    #expect((zip(gemm.scalars, one.scalars).map { abs($0 - $1) }.max() ?? 0) < 1e-4)
}

/// A 1x1 layer with enough 4-pixel tiles (300 of them, 2 images) that 2 and 3 threads share
/// it out in blocks, each thread helping the others when it is done with its own share.
@Test func pointwiseConvolutionSharedInBlocksIsDeterministic() {
    let g = ConvGeometry(batch: 2, height: 20, width: 30, inChannels: 40, outChannels: 72, kernelHeight: 1,
                         kernelWidth: 1, padding: .symmetric(0))
    let x = randomTensor([2, 20, 30, 40], seed: 11), w = randomTensor([1, 1, 40, 72], seed: 12)
    let b = randomTensor([72], seed: 13)
    let one = conv2dForward(x, weight: w, bias: b, geometry: g, activation: .relu6, pool: nil)
    for threads in [2, 3] {
        let pool = ThreadPool(threadCount: threads)
        for _ in 0..<3 {
            let other = conv2dForward(x, weight: w, bias: b, geometry: g, activation: .relu6, pool: pool)
            #expect(one.scalars == other.scalars, "\(threads) threads differ from 1")
        }
    }
    let reference = referenceConv2d(x, weight: w, bias: b, geometry: g).scalars.map { min(max($0, 0), 6) }
    #expect((zip(one.scalars, reference).map { abs($0 - $1) }.max() ?? 0) < 1e-4)
}

/// Small maps (7 x 7 to 14 x 14), where threads share out channels x tiles rather than
/// blocks of tiles: by weight panels when there are more output channels than pixels, a
/// panel at a boundary cut by tiles; by tiles otherwise, a tile at a boundary cut by
/// panels. Odd panel counts in the 7 x 7 cases (9, 5, 17, 11), so a thread's share starts on
/// an odd panel and the one-pixel tiles' panel pairs form differently on each thread count;
/// pointwise and 3x3 (pointer table); every result bit for bit the one-thread result.
@Test(arguments: [
    (1, 7, 7, 192, 200, 1),     // 8 x 24 + a 8-wide panel, the last tile of one pixel
    (1, 7, 7, 64, 120, 3),      // five 24-wide panels through the pointer table
    (2, 7, 7, 96, 400, 1),      // 98 pixels, a 16-wide last panel
    (1, 14, 14, 80, 480, 1),    // 196 pixels in whole tiles
    (1, 7, 7, 48, 256, 1),      // compact's last projection: 10 x 24 + 16, the sixth panel cut on 2 threads
    (1, 14, 14, 384, 128, 1),   // split by tiles: 49 tiles, the 25th cut by panels on 2 threads
    (1, 7, 7, 32, 40, 3),       // by tiles through the pointer table, a last tile of one pixel
    (2, 11, 13, 24, 40, 3),     // 286 pixels, tiles across rows and images
])
func directConvolutionSplitsSmallMapsDeterministically(shape: (Int, Int, Int, Int, Int, Int)) {
    let (n, h, w, cin, cout, k) = shape
    let g = ConvGeometry(batch: n, height: h, width: w, inChannels: cin, outChannels: cout, kernelHeight: k,
                         kernelWidth: k, padding: .symmetric(k / 2))
    let x = randomTensor([n, h, w, cin], seed: 31), weight = randomTensor([k, k, cin, cout], seed: 32)
    let b = randomTensor([cout], seed: 33), r = randomTensor([n, h, w, cout], seed: 34)
    let one = conv2dForward(x, weight: weight, bias: b, geometry: g, activation: .relu6, residual: r, pool: nil)
    for threads in [2, 3, 4] {
        let pool = ThreadPool(threadCount: threads)
        for _ in 0..<2 {
            let other = conv2dForward(x, weight: weight, bias: b, geometry: g, activation: .relu6, residual: r, pool: pool)
            let differing = zip(one.scalars, other.scalars).filter { $0 != $1 }.count
            #expect(differing == 0, "\(g) on \(threads) threads: \(differing) elements differ from 1 thread")
        }
    }
    let plain = referenceConv2d(x, weight: weight, bias: b, geometry: g).scalars
    let expected = plain.indices.map { min(max(plain[$0] + r.scalars[$0], 0), 6) }
    #expect((zip(one.scalars, expected).map { abs($0 - $1) }.max() ?? 0) < 1e-4)
}

/// A stem on RGB, copied into zero-padded bands of output rows that the threads share
/// (12 and 13 rows here, the last band short): TF-same padding (bottom and right) and
/// symmetric padding, batch 2, a band of 13 x 73 pixels that ends inside a 4-pixel tile;
/// the same bits on 2 and 3 threads as on one, and the reference within rounding.
@Test(arguments: [(Padding.same, 151), (Padding.symmetric(1), 151), (Padding.same, 145)])
func stemBandsSharedBetweenThreads(padding: Padding, width: Int) {
    let g = ConvGeometry(batch: 2, height: 150, width: width, inChannels: 3, outChannels: 32, kernelHeight: 3,
                         kernelWidth: 3, stride: (2, 2), padding: padding)
    let x = randomTensor([2, 150, width, 3], seed: 41), w = randomTensor([3, 3, 3, 32], seed: 42)
    let b = randomTensor([32], seed: 43)
    let one = conv2dForward(x, weight: w, bias: b, geometry: g, activation: .relu6, pool: nil)
    for threads in [2, 3] {
        let other = conv2dForward(x, weight: w, bias: b, geometry: g, activation: .relu6, pool: ThreadPool(threadCount: threads))
        let differing = zip(one.scalars, other.scalars).filter { $0 != $1 }.count
        #expect(differing == 0, "\(padding) on \(threads) threads: \(differing) elements differ from 1 thread")
    }
    let reference = referenceConv2d(x, weight: w, bias: b, geometry: g).scalars.map { min(max($0, 0), 6) }
    #expect((zip(one.scalars, reference).map { abs($0 - $1) }.max() ?? 0) < 1e-4)
}
