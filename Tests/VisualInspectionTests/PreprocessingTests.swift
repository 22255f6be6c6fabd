import Anomaly
import Distillation
import Evaluation
import FewShot
@_spi(Engine) import ImageIO
import ModelFile
import NeuralNet
import Synthesis
import TensorCore
import Testing
@_spi(Engine) import VisualInspection

@Test func regionOfInterestCropsBeforeResizing() {
    // Left half black, right half white: a ROI on the right half gives an all-white input.
    var pixels = [UInt8]()
    for _ in 0..<8 { for x in 0..<16 { pixels.append(x < 8 ? 0 : 255) } }
    let image = Image(width: 16, height: 8, channels: 1, pixels: pixels)
    var preprocessing = Preprocessing(size: 4, mean: [0, 0, 0], std: [1, 1, 1])
    #expect(Set(preprocessing.tensor(image).scalars).count > 1)
    preprocessing.regionOfInterest = RegionOfInterest("8,0,8,8")
    #expect(preprocessing.tensor(image).scalars.allSatisfy { $0 == 1 })
    // A ROI partly outside is clipped; one wholly outside leaves the image whole.
    preprocessing.regionOfInterest = RegionOfInterest(x: 12, y: 4, width: 100, height: 100)
    #expect(preprocessing.tensor(image).scalars.allSatisfy { $0 == 1 })
    preprocessing.regionOfInterest = RegionOfInterest(x: 50, y: 50, width: 4, height: 4)
    #expect(Set(preprocessing.tensor(image).scalars).count > 1)
    #expect(RegionOfInterest("1,2,3") == nil && RegionOfInterest("1,2,0,4") == nil)
}
