import FewShot
import ImageIO
import NeuralNet
import TensorCore

/// Labelled images in one sub-folder per class.
public struct ClassFolders: Sendable {
    /// Class names (the sub-folder names) and their image files.
    public var classes: [(name: String, files: [String])]

    /// Reads `root/<class>/...` (recursively). A PNG beside a JPEG of the same name is taken
    /// for its mask and skipped (the magnetic-tile layout), as are hidden files.
    ///
    /// - Parameters:
    ///   - root: the folder.
    ///   - excluding: class folder names to leave out (e.g. `MT_Free`, `good`).
    ///   - minimumClasses: how many classes with images there must be.
    public static func load(_ root: String, excluding: Set<String> = [],
                            minimumClasses: Int = 2) throws(DatasetError) -> ClassFolders {
        var classes: [(name: String, files: [String])] = []
        for folder in listDirectory(root).filter(isDirectory) {
            let name = folder.split(separator: "/").last.map(String.init) ?? folder
            if excluding.contains(name) { continue }
            let all = InputFiles([folder]).filter { path in
                let lower = path.lowercased()
                return lower.hasSuffix(".png") || lower.hasSuffix(".jpg") || lower.hasSuffix(".jpeg")
            }
            let jpegStems = Set(all.filter { $0.lowercased().hasSuffix(".jpg") }.map { String($0.dropLast(4)) })
            let files = all.filter { !($0.lowercased().hasSuffix(".png") && jpegStems.contains(String($0.dropLast(4)))) }
            if !files.isEmpty { classes.append((name, files)) }
        }
        if classes.count < minimumClasses {
            throw .layout(path: root, detail: "needs at least \(minimumClasses == 1 ? "one class sub-folder" : "\(minimumClasses) class sub-folders") with images")
        }
        return ClassFolders(classes: classes)
    }
}

/// How embeddings are taken from the backbone.
public enum EmbeddingSource: String, Sendable, Codable, CaseIterable {
    /// The pooled last feature map (the backbone's own embedding).
    case last
    /// The pooled stride-8 and stride-16 maps and the embedding, concatenated (texture-
    /// and part-level cues together).
    case multi
}

/// Raw embeddings of images (before the classifier's transform).
public func embeddings(of images: [Tensor], backbone: FrozenBackbone, source: EmbeddingSource,
                      pool: ThreadPool = .shared) -> [[Float]] {
    var out: [[Float]] = []
    var start = 0
    while start < images.count {
        let end = min(start + 8, images.count)
        out += embeddings(from: backbone.features(Tensor.stacked(Array(images[start..<end])), pool: pool), source: source)
        start = end
    }
    return out
}

/// Raw embeddings of a batch from its backbone features (one vector per image).
public func embeddings(from features: BackboneFeatures, source: EmbeddingSource) -> [[Float]] {
    let n = features.embedding.shape[0], d = features.embedding.shape[1]
    let last = features.embedding.scalars
    var pooled: [[Float]] = []
    if source == .multi {
        pooled = features.maps[1...2].map { map in adaptiveAvgPoolForFeatures(map).scalars }
    }
    return (0..<n).map { i in
        var v = Array(last[(i * d)..<((i + 1) * d)])
        if source == .multi {
            // Each part normalised on its own so that the wide embedding does not drown
            // the narrower map descriptors.
            v = normalizedVector(v)
            for (index, map) in features.maps[1...2].enumerated() {
                let c = map.shape[3]
                v += normalizedVector(Array(pooled[index][(i * c)..<((i + 1) * c)]))
            }
        }
        return v
    }
}

/// Global average pooling of `[N, H, W, C]` to `[N, C]`.
func adaptiveAvgPoolForFeatures(_ x: Tensor) -> Tensor {
    globalAvgPool(Variable(x)).value
}

/// The image seen through the `view`-th symmetry of the square, `[H, W, C]`: 0 itself,
/// 1 mirrored left-right, 2 top-bottom, 3 and 4 a quarter turn either way, 5 a half turn,
/// 6 and 7 the two diagonal mirrors. Surface defects have no preferred orientation, so
/// these are the same defect seen again (used to multiply base-class examples when a head
/// is trained).
public func symmetryView(_ image: Tensor, _ view: Int) -> Tensor {
    switch view % 8 {
    case 0: return image
    case 1: return flipped(image, horizontal: true)
    case 2: return flipped(image, horizontal: false)
    case 3: return rotated90(image, times: 1)
    case 4: return rotated90(image, times: 3)
    case 5: return rotated90(image, times: 2)
    case 6: return flipped(rotated90(image, times: 1), horizontal: true)
    default: return flipped(rotated90(image, times: 1), horizontal: false)
    }
}

/// Raw embeddings of `views` symmetry views of each image (see ``symmetryView(_:_:)``),
/// `[images][views][D]`; view 0 is the image itself.
public func viewEmbeddings(of images: [Tensor], views: Int, backbone: FrozenBackbone, source: EmbeddingSource,
                           pool: ThreadPool = .shared) -> [[[Float]]] {
    let count = Swift.max(1, Swift.min(views, 8))
    let all = embeddings(of: images.flatMap { image in (0..<count).map { symmetryView(image, $0) } }, backbone: backbone,
                         source: source, pool: pool)
    return images.indices.map { i in Array(all[(i * count)..<((i + 1) * count)]) }
}
