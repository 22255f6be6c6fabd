import NeuralNet
import TensorCore
import Testing

/// An inverted-residual block run band by band gives exactly the layer-by-layer result:
/// stride 1 with the identity shortcut, stride 2 with a 5x5 kernel and TF-same padding
/// (asymmetric), a map whose height is not a multiple of the band, batch 2, 1 to 4 threads
/// (each thread's share of an image in several chunks, carried over from one to the next;
/// with 4 threads on a 2-core machine, threads also take over others' chunks).
@Test(arguments: [(1, 3, true), (2, 5, false), (1, 5, true)])
func bandByBandInvertedResidualEqualsLayerByLayer(shape: (Int, Int, Bool)) {
    let (stride, kernel, identity) = shape
    let (h, w, cin, hidden) = (61, 47, 24, 144)   // 47 x 61 x 144 floats = 1.6 MiB: fused
    func conv(_ cin: Int, _ cout: Int, k: Int, s: Int, groups: Int, act: Activation, seed: UInt64) -> FusedConv {
        FusedConv(weight: randomTensor([k, k, cin / groups, cout], seed: seed, scale: 0.3), bias: randomTensor([cout], seed: seed + 1),
                  stride: (s, s), padding: k == 1 ? .valid : .same, dilation: (1, 1), groups: groups, activation: act)
    }
    let block = FrozenBlock(
        [conv(cin, hidden, k: 1, s: 1, groups: 1, act: .relu6, seed: 1),
         conv(hidden, hidden, k: kernel, s: stride, groups: hidden, act: .relu6, seed: 3),
         conv(hidden, identity ? cin : 40, k: 1, s: 1, groups: 1, act: .none, seed: 5)],
        shortcut: identity ? .identity : .none)
    let x = randomTensor([2, h, w, cin], seed: 9)
    let expected = block.layerByLayer(x, pool: nil)
    for pool in [nil, ThreadPool(threadCount: 2), ThreadPool(threadCount: 3), ThreadPool(threadCount: 4)] as [ThreadPool?] {
        for _ in 0..<(pool == nil ? 1 : 3) {
            let fused = block(x, pool: pool)
            #expect(fused.shape == expected.shape)
            #expect(fused.scalars == expected.scalars,
                    "stride \(stride) kernel \(kernel), \(pool?.threadCount ?? 1) threads: band-by-band differs")
        }
    }
}
