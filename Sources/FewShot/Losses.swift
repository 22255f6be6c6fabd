// The episode losses the projection head is trained with, built from NeuralNet's
// differentiable operations.
import NeuralNet

/// The prototypical-network loss: prototypes are the class means of the support
/// embeddings; each query is classified by a softmax over negative squared distances to
/// them (scaled by `temperature`), and the loss is the cross-entropy of the true classes.
///
/// - Parameters:
///   - support: `[S, D]` embeddings with `supportLabels` in `0..<ways`.
///   - query: `[Q, D]` embeddings with `queryLabels`.
public func prototypicalLoss(support: Variable, supportLabels: [Int], query: Variable, queryLabels: [Int],
                             ways: Int, temperature: Float = 1) -> Variable {
    let prototypes = classMeans(support, labels: supportLabels, classes: ways)
    let logits = (-temperature) * squaredDistances(query, prototypes)
    return crossEntropy(logits, labels: queryLabels)
}

/// The prototypical loss the few-shot classifier is evaluated with: both sets centred on
/// the support mean (optionally), rows L2-normalised, prototypes the normalised class means
/// of the support, logits `scale * cos(query, prototype)`, cross-entropy of the true classes.
///
/// Cosine rather than squared Euclidean because the classifier compares cosines; with
/// normalised rows the two differ only by the normalisation of the prototypes.
///
/// - Parameters:
///   - support: `[S, D]` with `supportLabels` in `0..<ways` (every class present).
///   - query: `[Q, D]` with `queryLabels` in `0..<ways`.
///   - scale: the inverse temperature of the softmax.
///   - centerOnSupport: subtract the mean support row from every row first.
public func cosinePrototypicalLoss(support: Variable, supportLabels: [Int], query: Variable, queryLabels: [Int],
                                   ways: Int, scale: Float, centerOnSupport: Bool = true) -> Variable {
    var s = support, q = query
    if centerOnSupport {
        let d = support.shape[1]
        let negativeMean = (-1) * classMeans(support, labels: [Int](repeating: 0, count: support.shape[0]), classes: 1).reshaped([d])
        s = addRowVector(support, negativeMean)
        q = addRowVector(query, negativeMean)
    }
    let prototypes = l2Normalized(classMeans(l2Normalized(s), labels: supportLabels, classes: ways))
    let logits = scale * matmul(l2Normalized(q), prototypes, transposeB: true)
    return crossEntropy(logits, labels: queryLabels)
}
