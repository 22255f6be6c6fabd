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

@Test func generatedClassesCoverEveryCombinationWithUniqueNames() {
    let generator = SyntheticDefects(seed: 1)
    let combinations = SyntheticDefects.Texture.allCases.count * SyntheticDefects.Defect.allCases.count
    let classes = generator.classes(combinations + 5)
    #expect(Set(classes.map(\.name)).count == classes.count)
    #expect(Set(classes.prefix(combinations).map { "\($0.texture)-\($0.defect)" }).count == combinations)
    #expect(classes.last?.variant == 1)
}

@Test func generatedImagesAreSeededAndDiffer() {
    let generator = SyntheticDefects(seed: 2)
    let classes = generator.classes(20)
    let a = generator.image(of: classes[7], index: 3, size: 40)
    #expect(a.width == 40 && a.height == 40 && a.channels == 1)
    #expect(a == generator.image(of: classes[7], index: 3, size: 40))
    #expect(a != generator.image(of: classes[7], index: 4, size: 40))
    #expect(a != SyntheticDefects(seed: 3).image(of: classes[7], index: 3, size: 40))
    // Not a flat image: the texture spans a good part of the grey range.
    let pixels = a.pixels
    #expect((pixels.max() ?? 0) - (pixels.min() ?? 0) > 60)
}
