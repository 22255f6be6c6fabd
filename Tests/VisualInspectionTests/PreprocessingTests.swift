import ImageIO
import Testing
import VisualInspection

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

@Test func paddingKeepsTheAspectRatioMirrorsTheMarginsAndMapsComeBackToTheImageFrame() {
    // A 6x12 (tall) image with a distinct value per pixel, grey.
    let pixels = (0..<72).map { UInt8($0 * 3) }
    let image = Image(width: 6, height: 12, channels: 1, pixels: pixels)
    let preprocessing = Preprocessing(size: 12, mean: [0, 0, 0], std: [1, 1, 1], fit: .pad)
    let rect = preprocessing.contentRect(width: 6, height: 12)
    #expect(rect == RegionOfInterest(x: 3, y: 0, width: 6, height: 12))
    let t = preprocessing.tensor(image)
    #expect(t.shape == [12, 12, 3])
    let v = t.scalars
    func at(_ x: Int, _ y: Int) -> Float { v[(y * 12 + x) * 3] }
    for y in 0..<12 {
        for x in 0..<6 { #expect(abs(at(3 + x, y) - Float(pixels[y * 6 + x]) / 255) < 1e-6) }
        // Mirrored margins: column 2 repeats column 3, column 0 repeats column 5; on the
        // right, column 9 repeats column 8.
        #expect(at(2, y) == at(3, y) && at(0, y) == at(5, y) && at(9, y) == at(8, y) && at(11, y) == at(6, y))
    }
    // A map that is 1 on the content and 0 on the margins comes back as all ones.
    var values = [Float](repeating: 0, count: 144)
    for y in 0..<12 { for x in 3..<9 { values[y * 12 + x] = 1 } }
    let back = preprocessing.imageFrame(of: AnomalyMap(width: 12, height: 12, values: values), width: 6, height: 12)
    #expect(back.width == 12 && back.height == 12 && back.values.allSatisfy { $0 == 1 })
    // Square images and stretched inputs are left alone.
    #expect(preprocessing.contentRect(width: 5, height: 5) == RegionOfInterest(x: 0, y: 0, width: 12, height: 12))
    let stretched = Preprocessing(size: 12, mean: [0, 0, 0], std: [1, 1, 1])
    let map = AnomalyMap(width: 12, height: 12, values: values)
    #expect(stretched.imageFrame(of: map, width: 6, height: 12) == map)
    // A very long image (margins wider than the content) still fills the square.
    let long = Image(width: 2, height: 40, channels: 1, pixels: [UInt8](repeating: 9, count: 80))
    #expect(preprocessing.tensor(long).scalars.allSatisfy { abs($0 - Float(9) / 255) < 1e-6 })
}
