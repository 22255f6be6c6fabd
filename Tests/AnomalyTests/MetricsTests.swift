import Anomaly
import TensorCore
import Testing

@Suite("Metrics")
struct MetricsTests {
    @Test("image AUROC: perfect, inverted, tied, Mann-Whitney example, empty class")
    func imageAUROC() {
        let labels = [false, false, true, true]
        #expect(AnomalyMetrics.imageAUROC(scores: [0.1, 0.2, 0.8, 0.9], labels: labels) == 1)
        #expect(AnomalyMetrics.imageAUROC(scores: [0.9, 0.8, 0.2, 0.1], labels: labels) == 0)
        #expect(AnomalyMetrics.imageAUROC(scores: [0.5, 0.5, 0.5, 0.5], labels: labels) == 0.5)
        // Anomalous {3, 5, 5}, normal {1, 5, 7}: U = 1 + 1.5 + 1.5 = 4 of 9 pairs.
        let auc = AnomalyMetrics.imageAUROC(scores: [3, 1, 5, 5, 5, 7], labels: [true, false, true, false, true, false])
        #expect(abs(auc - 4.0 / 9.0) < 1e-12)
        #expect(AnomalyMetrics.imageAUROC(scores: [1, 2], labels: [true, true]).isNaN)
        #expect(AnomalyMetrics.imageAUROC(scores: [], labels: []).isNaN)
    }

    @Test("image AUROC equals the pairwise definition on random scores with ties")
    func imageAUROCPairwise() {
        var rng = Xoshiro256(seed: 21)
        let scores = (0..<300).map { _ in Float(Int(rng.next() % 40)) }
        let labels = (0..<300).map { _ in rng.next() % 3 == 0 }
        var wins = 0.0, pairs = 0.0
        for i in 0..<300 where labels[i] {
            for j in 0..<300 where !labels[j] {
                pairs += 1
                wins += scores[i] > scores[j] ? 1 : scores[i] == scores[j] ? 0.5 : 0
            }
        }
        #expect(abs(AnomalyMetrics.imageAUROC(scores: scores, labels: labels) - wins / pairs) < 1e-12)
    }

    @Test("pixel AUROC equals image AUROC on the flattened pixels")
    func pixelAUROC() {
        var rng = Xoshiro256(seed: 5)
        var maps = [[Float]](), masks = [[Bool]]()
        for _ in 0..<6 {
            maps.append((0..<64).map { _ in Float(Int(rng.next() % 50)) / 10 })
            masks.append((0..<64).map { _ in rng.next() % 4 == 0 })
        }
        let pixel = AnomalyMetrics.pixelAUROC(maps: maps, masks: masks)
        let flat = AnomalyMetrics.imageAUROC(scores: maps.flatMap { $0 }, labels: masks.flatMap { $0 })
        #expect(pixel == flat)
        #expect(pixel > 0.3 && pixel < 0.7)
        #expect(AnomalyMetrics.pixelAUROC(maps: [[1, 2]], masks: [[false, false]]).isNaN)
    }

    @Test("AUPRO of a perfect detector is 1")
    func auproPerfect() {
        var rng = Xoshiro256(seed: 8)
        let masks = (0..<4).map { _ in (0..<(12 * 9)).map { _ in rng.next() % 5 == 0 } }
        let maps = masks.map { $0.map { $0 ? Float(0.7) + 0.1 * rng.nextUnitFloat() : 0.3 * rng.nextUnitFloat() } }
        #expect(abs(AnomalyMetrics.aupro(maps: maps, masks: masks, width: 12, height: 9) - 1) < 1e-12)
        // Scores below every normal score: PRO stays 0 until FPR reaches 1.
        let inverted = maps.map { $0.map { 1 - $0 } }
        #expect(AnomalyMetrics.aupro(maps: inverted, masks: masks, width: 12, height: 9) == 0)
    }

    @Test("AUPRO with partial coverage, computed by hand")
    func auproPartial() {
        // 4 x 4: region A (2 px, top left), region B (4 px, right column); 10 normal pixels.
        let mask: [Bool] = [
            true, true, false, true,
            false, false, false, true,
            false, false, false, true,
            false, false, false, true,
        ]
        let map: [Float] = [
            0.9, 0.9, 0.0, 0.9,
            0.0, 0.0, 0.5, 0.9,
            0.0, 0.0, 0.0, 0.1,
            0.0, 0.0, 0.0, 0.1,
        ]
        // Curve: (0, 0) -> (0, 0.75) [A full, B half] -> (0.1, 0.75) [one normal at 0.5]
        // -> (0.1, 1) [rest of B] -> (1, 1). Area to 0.3: 0.1 * 0.75 + 0.2 * 1 = 0.275.
        let value = AnomalyMetrics.aupro(maps: [map], masks: [mask], width: 4, height: 4)
        #expect(abs(value - 0.275 / 0.3) < 1e-12)
        let early = AnomalyMetrics.aupro(maps: [map], masks: [mask], width: 4, height: 4, fprLimit: 0.05)
        #expect(abs(early - 0.75) < 1e-12)

        // 3 x 2: one region (left column: 0.9 and 0.2), normals 0.5, 0.2, 0.2, 0.0.
        // Curve: (0, 0.5) -> (0.25, 0.5) -> (0.75, 1) (ties enter together) -> (1, 1).
        // To 0.5: 0.25 * 0.5 + 0.25 * (0.5 + 0.75) / 2 = 0.28125, / 0.5 = 0.5625.
        let slanted = AnomalyMetrics.aupro(
            maps: [[0.9, 0.5, 0.2, 0.2, 0.2, 0.0]], masks: [[true, false, false, true, false, false]],
            width: 3, height: 2, fprLimit: 0.5)
        #expect(abs(slanted - 0.5625) < 1e-12)
        #expect(AnomalyMetrics.aupro(maps: [[1, 2]], masks: [[false, false]], width: 2, height: 1).isNaN)
    }

    @Test("AUPRO averages over regions, not pixels")
    func auproRegionsWeighEqually() {
        // A 1-pixel region found, a 5-pixel region missed (below every normal score):
        // PRO is 0.5 from FPR 0 up to FPR 1, so the area is 0.5.
        let mask: [Bool] = [true, false, true, true, true, true, true, false, false, false]
        let map: [Float] = [1.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.5]
        #expect(abs(AnomalyMetrics.aupro(maps: [map], masks: [mask], width: 10, height: 1) - 0.5) < 1e-12)
    }

    @Test("F1-max on a small example")
    func f1Max() {
        // Thresholds 0.9 / 0.8 / 0.7 / 0.6 / 0.5 give F1 = 2/4, 2/5, 4/6, 6/7, 6/8.
        let (f1, threshold) = AnomalyMetrics.f1Max(
            scores: [0.9, 0.8, 0.7, 0.6, 0.5], labels: [true, false, true, true, false])
        #expect(abs(f1 - 6.0 / 7.0) < 1e-12)
        #expect(threshold == 0.6)
        let perfect = AnomalyMetrics.f1Max(scores: [0.1, 0.7, 0.8, 0.2], labels: [false, true, true, false])
        #expect(perfect.f1 == 1 && perfect.threshold == 0.7)
        // Ties: both samples enter together at the only threshold.
        let tied = AnomalyMetrics.f1Max(scores: [0.5, 0.5], labels: [true, false])
        #expect(abs(tied.f1 - 2.0 / 3.0) < 1e-12 && tied.threshold == 0.5)
        #expect(AnomalyMetrics.f1Max(scores: [0.3], labels: [false]).f1.isNaN)
    }

    @Test("connected components: diagonals, separate blobs, empty, full, tiny images")
    func components() {
        // A diagonal line is one component with 8-connectivity.
        let diagonal: [Bool] = [true, false, false, false, true, false, false, false, true]
        let (labels, count) = AnomalyMetrics.connectedComponents(diagonal, width: 3, height: 3)
        #expect(count == 1)
        #expect(labels == [1, 0, 0, 0, 1, 0, 0, 0, 1])

        // Two blobs separated by an empty column; a U shape whose arms join below.
        let x = true, o = false
        let blobs: [Bool] = [
            x, x, o, x, o, x,
            x, o, o, x, o, x,
            o, o, o, x, x, x,
        ]
        let (blobLabels, blobCount) = AnomalyMetrics.connectedComponents(blobs, width: 6, height: 3)
        #expect(blobCount == 2)
        #expect(blobLabels == [1, 1, 0, 2, 0, 2, 1, 0, 0, 2, 0, 2, 0, 0, 0, 2, 2, 2])
        #expect(AnomalyMetrics.regions(blobs, width: 6, height: 3) == [
            Region(x: 0, y: 0, width: 2, height: 2, area: 3),
            Region(x: 3, y: 0, width: 3, height: 3, area: 7),
        ])

        #expect(AnomalyMetrics.connectedComponents([Bool](repeating: false, count: 12), width: 4, height: 3).count == 0)
        #expect(AnomalyMetrics.regions([Bool](repeating: false, count: 12), width: 4, height: 3).isEmpty)
        let full = AnomalyMetrics.connectedComponents([Bool](repeating: true, count: 12), width: 4, height: 3)
        #expect(full.count == 1 && full.labels.allSatisfy { $0 == 1 })
        #expect(AnomalyMetrics.regions([Bool](repeating: true, count: 12), width: 4, height: 3)
            == [Region(x: 0, y: 0, width: 4, height: 3, area: 12)])
        #expect(AnomalyMetrics.connectedComponents([true], width: 1, height: 1).count == 1)
        #expect(AnomalyMetrics.connectedComponents([false], width: 1, height: 1).count == 0)
        #expect(AnomalyMetrics.connectedComponents([], width: 0, height: 0).count == 0)
        // Single row and single column: no wrap-around between row ends.
        #expect(AnomalyMetrics.connectedComponents([true, false, true, true], width: 4, height: 1).count == 2)
        #expect(AnomalyMetrics.connectedComponents([true, true, false, false, true, true], width: 2, height: 3).count == 2)
        // Row ends must not join: (row 0, last column) and (row 1, first column).
        #expect(AnomalyMetrics.connectedComponents([false, false, true, true, false, false], width: 3, height: 2).count == 2)
    }

    @Test("components of a large spiral (deep flood fill, no recursion)")
    func largeComponent() {
        let side = 400
        var mask = [Bool](repeating: false, count: side * side)
        // Every other row fully set, joined alternately at the right and left ends: one snake.
        for y in stride(from: 0, to: side, by: 2) {
            for x in 0..<side { mask[y * side + x] = true }
            if y + 1 < side { mask[(y + 1) * side + ((y / 2) % 2 == 0 ? side - 1 : 0)] = true }
        }
        let (labels, count) = AnomalyMetrics.connectedComponents(mask, width: side, height: side)
        #expect(count == 1)
        #expect(labels.filter { $0 == 1 }.count == mask.filter { $0 }.count)
    }
}
