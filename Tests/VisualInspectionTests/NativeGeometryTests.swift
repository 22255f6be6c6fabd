import Anomaly
import Distillation
import Evaluation
import FewShot
import Foundation
@_spi(Engine) import ImageIO
import ModelFile
import NeuralNet
import Synthesis
import TensorCore
import Testing
@_spi(Engine) import VisualInspection

/// A tall strip like a commutator photographed end to end: 128 x 448 grey pixels, copper
/// segments 28 pixels high separated by dark 4-pixel gaps, with grain. `crack` adds a faint
/// hairline 2 pixels high and 16 wide, 50 grey levels darker, in the middle of the seventh
/// segment (rows 217-218 at x 40-55); squeezed into a square it is one pixel high.
func stripPart(seed: UInt64, crack: Bool = false) -> Image {
    var rng = Xoshiro256(seed: seed)
    let width = 128, height = 448
    var pixels = [UInt8](repeating: 0, count: width * height)
    for y in 0..<height {
        for x in 0..<width {
            let inGap = y % 32 >= 28
            var v = (inGap ? 40.0 : 170.0 + 12 * sin(Double(x) * 0.35)) + Double(rng.nextStandardNormal()) * 6
            if crack && (217...218).contains(y) && (40..<56).contains(x) { v -= 50 }
            pixels[y * width + x] = UInt8(max(0, min(255, v)))
        }
    }
    return Image(width: width, height: height, channels: 1, pixels: pixels)
}

@Test func framesOfOneOblongShapeKeepItAndOthersAreSquare() {
    #expect(InputGeometry.aspectRatio(ofFrames: Array(repeating: (128, 448), count: 4)) == 0.29)
    #expect(InputGeometry.aspectRatio(ofFrames: [(1240, 500), (1236, 502), (1250, 498)]) == 2.48)
    // Near square, mixed shapes (magnetic tile's crops run from 0.4 to 2.4), one image
    // far longer than the limit.
    #expect(InputGeometry.aspectRatio(ofFrames: [(110, 100), (112, 100)]) == 1)
    #expect(InputGeometry.aspectRatio(ofFrames: [(200, 100), (100, 200), (150, 100)]) == 1)
    #expect(InputGeometry.aspectRatio(ofFrames: [(5000, 100)]) == InputGeometry.maximumAspectRatio)
    #expect(InputGeometry.aspectRatio(ofFrames: []) == 1)
    // The short side stays; the long one is a multiple of 32.
    #expect(InputGeometry.size(shortSide: 224, aspectRatio: 2.48) == (544, 224))
    #expect(InputGeometry.size(shortSide: 224, aspectRatio: 0.29) == (224, 768))
    #expect(InputGeometry.size(shortSide: 224, aspectRatio: 1) == (224, 224))
    #expect(InputGeometry.size(shortSide: 64, aspectRatio: 1.1) == (64, 64))
}

/// Trains on six tall strips with the untrained compact backbone, by default or with every
/// frame squeezed into the square.
func stripModel(squeezed: Bool) throws -> InspectionModel {
    let good = (0..<6).map { stripPart(seed: UInt64($0)) }
    var options = TrainingOptions()
    if squeezed {
        // The automatic choice for aligned parts, at the square input it used to get.
        options.scorers = [AutomaticSettings.aligned(from: AnomalyScorerOptions(), goodImageCount: good.count)]
    }
    return try InspectorTrainer.train(backbone: BackboneArchitecture.compact.make(seed: 5), good: good, classes: [],
                                      options: options)
}

@Test(.timeLimit(.minutes(3)))
func aLongStripKeepsItsShapeAndAHairlineCrackIsFoundWhereItIs() throws {
    let model = try stripModel(squeezed: false)
    // 128 x 448 frames: width over height 0.29; the short side 224, the long 768.
    #expect(model.preprocessing.aspectRatio == 0.29)
    #expect(model.preprocessing.inputSize == (224, 768))
    let anomaly = try #require(model.anomaly)
    #expect(anomaly.members.allSatisfy { $0.options.inputSize == (224, 768) })
    #expect(anomaly.choice?.family == .aligned)

    let inspector = Inspector(model: model)
    let cracked = inspector.inspect(stripPart(seed: 100, crack: true))
    let good = (101..<104).map { inspector.inspect(stripPart(seed: UInt64($0))) }
    // (The threshold rule lets some good parts fail at six shots: only the ranking and the
    // crack's verdict are asserted.)
    #expect(cracked.verdict == .defect, "crack \(cracked.score)")
    #expect(good.allSatisfy { $0.score < cracked.score }, "good \(good.map(\.score)), crack \(cracked.score)")
    // The map is at the oblong input size; the box is in the strip's own pixels, on the crack.
    #expect(cracked.anomalyMap?.width == 224 && cracked.anomalyMap?.height == 768)
    let box = try #require(cracked.boxes.max { $0.score < $1.score })
    #expect(box.x <= 48 && box.x + box.width >= 48 && box.y <= 218 && box.y + box.height >= 218, "box \(box)")
    #expect(box.x + box.width <= 128 && box.y + box.height <= 448)

    // The shape survives the model file.
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("strip-\(getpid()).vimodel").path
    defer { unlink(path) }
    try model.write(toFile: path)
    let loaded = try InspectionModel(contentsOfFile: path)
    #expect(loaded.preprocessing == model.preprocessing)
    #expect(Inspector(model: loaded).inspect(stripPart(seed: 100, crack: true)).anomalyScore == cracked.anomalyScore)

    // Squeezed into the square the hairline is about a pixel high: its margin over the good
    // strips, in spreads of each model's held-out good scores, is smaller.
    let squeezed = Inspector(model: try stripModel(squeezed: true))
    #expect(squeezed.model.preprocessing.inputSize == (224, 224))
    func margin(_ inspector: Inspector) -> Double {
        let c = inspector.model.anomaly!.calibration
        let n = Double(c.goodScores.count), mean = c.goodScores.reduce(0.0) { $0 + Double($1) } / n
        let spread = (c.goodScores.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / (n - 1)).squareRoot()
        let crack = Double(inspector.inspect(stripPart(seed: 100, crack: true)).anomalyScore!)
        let goodMax = (101..<104).map { Double(inspector.inspect(stripPart(seed: UInt64($0))).anomalyScore!) }.max()!
        return (crack - goodMax) / spread
    }
    let (nativeMargin, squeezedMargin) = (margin(inspector), margin(squeezed))
    #expect(nativeMargin > squeezedMargin, "crack over the good strips: native \(nativeMargin), squeezed \(squeezedMargin) spreads")
    print("strip margins: native \(nativeMargin), squeezed \(squeezedMargin)")
}
