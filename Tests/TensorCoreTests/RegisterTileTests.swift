import Testing
import TensorCore

/// sum over p < depth of a[i][p] * b[p * width + j], in Double.
private func reference(_ a: [[Float]], _ b: [Float], width: Int, depth: Int) -> [[Float]] {
    (0..<4).map { i in
        (0..<width).map { j in Float((0..<depth).reduce(0.0) { $0 + Double(a[i][$1]) * Double(b[$1 * width + j]) }) }
    }
}

private func close(_ x: SIMD8<Float>, _ row: [Float], from column: Int) -> Bool {
    (0..<8).allSatisfy { abs(x[$0] - row[column + $0]) <= 1e-4 * (1 + abs(row[column + $0])) }
}

@Test(arguments: [0, 1, 7, 64])
func theSharedRegisterTilesMatchAPlainSum(depth: Int) {
    // The tiles of GEMM, the direct and Winograd convolutions and the k-NN search, on
    // rows given by four pointers, on A packed 4 wide (Tile4x24 only), and added onto
    // sums already there.
    var rng = SystemRandomNumberGenerator()
    let a = (0..<4).map { _ in (0..<max(depth, 1)).map { _ in Float.random(in: -1...1, using: &rng) } }
    let packed = (0..<depth).flatMap { p in (0..<4).map { a[$0][p] } }
    for width in [24, 16, 8] {
        let b = (0..<(max(depth, 1) * width)).map { _ in Float.random(in: -1...1, using: &rng) }
        let expected = reference(a, b, width: width, depth: depth)
        a[0].withUnsafeBufferPointer { a0 in a[1].withUnsafeBufferPointer { a1 in a[2].withUnsafeBufferPointer { a2 in
            a[3].withUnsafeBufferPointer { a3 in b.withUnsafeBufferPointer { pb in packed.withUnsafeBufferPointer { pa in
                let p0 = a0.baseAddress!, p1 = a1.baseAddress!, p2 = a2.baseAddress!, p3 = a3.baseAddress!
                switch width {
                case 24:
                    var t = Tile4x24(), u = Tile4x24()
                    t.multiply(p0, p1, p2, p3, depth: depth, b: pb.baseAddress!)
                    if depth > 0 { u.multiply(packed: pa.baseAddress!, depth: depth, b: pb.baseAddress!) }
                    for i in 0..<4 {
                        let (x, y, z) = t.row(i), (xu, yu, zu) = u.row(i)
                        #expect(close(x, expected[i], from: 0) && close(y, expected[i], from: 8) && close(z, expected[i], from: 16))
                        #expect(close(xu, expected[i], from: 0) && close(yu, expected[i], from: 8) && close(zu, expected[i], from: 16))
                    }
                    // Accumulating onto existing sums: twice the products.
                    t.multiply(p0, p1, p2, p3, depth: depth, b: pb.baseAddress!)
                    #expect(close(t.c31 * 0.5, expected[3], from: 8))
                case 16:
                    var t = Tile4x16()
                    t.multiply(p0, p1, p2, p3, depth: depth, b: pb.baseAddress!)
                    let rows = [(t.c00, t.c01), (t.c10, t.c11), (t.c20, t.c21), (t.c30, t.c31)]
                    for i in 0..<4 { #expect(close(rows[i].0, expected[i], from: 0) && close(rows[i].1, expected[i], from: 8)) }
                default:
                    var t = Tile4x8()
                    t.multiply(p0, p1, p2, p3, depth: depth, b: pb.baseAddress!)
                    for (i, x) in [t.c0, t.c1, t.c2, t.c3].enumerated() { #expect(close(x, expected[i], from: 0)) }
                }
            } } }
        } } }
    }
}
