import Anomaly
import TensorCore
import Testing

@Suite("Coreset")
struct CoresetTests {
    /// `clusters` Gaussian blobs of very different sizes in `dimension` dimensions: the
    /// small, far blobs are what a random subset tends to miss.
    static func clustered(points: Int, clusters: Int, dimension: Int, seed: UInt64) -> Tensor {
        var rng = Xoshiro256(seed: seed)
        let centers = Tensor(randomNormal: [clusters, dimension], standardDeviation: 10, using: &rng).scalars
        var values = [Float]()
        values.reserveCapacity(points * dimension)
        for i in 0..<points {
            // Cluster c gets about half as many points as cluster c - 1.
            var c = 0
            while c < clusters - 1 && (i >> c) & 1 == 1 { c += 1 }
            for j in 0..<dimension { values.append(centers[c * dimension + j] + 0.5 * rng.nextStandardNormal()) }
        }
        return Tensor(values, shape: [points, dimension])
    }

    /// Max over all rows of the Euclidean distance to the nearest selected row (original space).
    static func coveringRadius(_ features: Tensor, _ subset: [Int]) -> Float {
        let bank = MemoryBank(Tensor(subset.flatMap { row in
            (0..<features.shape[1]).map { features[row, $0] }
        }, shape: [subset.count, features.shape[1]]))
        return bank.nearest(features, pool: nil).distances.scalars.max()!.squareRoot()
    }

    @Test("requested size, distinct indices, deterministic", arguments: [nil, 8] as [Int?])
    func sizeAndDeterminism(projection: Int?) {
        let x = Self.clustered(points: 500, clusters: 6, dimension: 32, seed: 1)
        for count in [0, 1, 2, 17, 250, 499] {
            let a = Coreset.greedyKCenter(x, count: count, projectionDimension: projection, seed: 5)
            #expect(a.count == count)
            #expect(Set(a).count == count)
            #expect(a.allSatisfy { (0..<500).contains($0) })
            #expect(a == Coreset.greedyKCenter(x, count: count, projectionDimension: projection, seed: 5, pool: nil))
            #expect(a == Coreset.greedyKCenter(
                x, count: count, projectionDimension: projection, seed: 5, pool: ThreadPool(threadCount: 3)))
        }
        #expect(Coreset.greedyKCenter(x, count: 500, seed: 5) == Array(0..<500))
        #expect(Coreset.greedyKCenter(x, count: 900, seed: 5) == Array(0..<500))
        #expect(Coreset.greedyKCenter(x, count: 10, seed: 5) != Coreset.greedyKCenter(x, count: 10, seed: 6))
    }

    @Test("duplicates: every row is still taken once")
    func duplicates() {
        let x = Tensor(repeating: 1, shape: [20, 3])
        let picked = Coreset.greedyKCenter(x, count: 19, projectionDimension: nil, seed: 0)
        #expect(Set(picked).count == 19)
    }

    @Test("without projection it equals the brute-force greedy loop")
    func matchesReference() {
        var rng = Xoshiro256(seed: 9)
        for (n, d) in [(1, 3), (2, 1), (37, 5), (300, 17)] {
            let x = Tensor(randomNormal: [n, d], using: &rng)
            for count in [1, n / 2, n - 1] where count >= 0 {
                #expect(
                    Coreset.greedyKCenter(x, count: count, projectionDimension: nil, seed: 4)
                        == Coreset.referenceGreedyKCenter(x, count: count, seed: 4))
            }
        }
    }

    @Test("covering radius is clearly smaller than that of a random subset", arguments: [nil, 16] as [Int?])
    func coveringRadius(projection: Int?) {
        let x = Self.clustered(points: 2000, clusters: 9, dimension: 64, seed: 2)
        let count = 40
        let greedy = Coreset.greedyKCenter(x, count: count, projectionDimension: projection, seed: 3)
        var rng = Xoshiro256(seed: 3)
        var shuffled = Array(0..<2000)
        shuffled.shuffle(using: &rng)
        let random = Array(shuffled.prefix(count))
        let greedyRadius = Self.coveringRadius(x, greedy)
        let randomRadius = Self.coveringRadius(x, random)
        #expect(greedyRadius < 0.6 * randomRadius, "greedy \(greedyRadius) vs random \(randomRadius)")
    }
}
