import ArgumentParser
import ImageIO

/// A comma-separated list option (`--layers 1,2`, `--seeds 0,1,2`, `--exclude MT_Free`),
/// parsed by ArgumentParser like any typed option: a value that does not parse is refused
/// with the option's name before the command runs.
struct CommaSeparated<Element: LosslessStringConvertible & Sendable>: ExpressibleByArgument, Sendable, CustomStringConvertible {
    var values: [Element]

    init(_ values: [Element]) { self.values = values }

    init?(argument: String) {
        var values: [Element] = []
        for part in argument.split(separator: ",", omittingEmptySubsequences: false) {
            guard let value = Element(String(part).trimmingWhitespace()) else { return nil }
            values.append(value)
        }
        self.values = values
    }

    var description: String { values.map { String(describing: $0) }.joined(separator: ",") }

    var defaultValueDescription: String { description }
}

private extension String {
    func trimmingWhitespace() -> String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}

/// `--max-pixels`, shared by the commands that decode images: one declaration, one check.
struct PixelLimit: ParsableArguments {
    @Option(help: "Largest image decoded, in pixels (a guard against decompression bombs); larger images are refused with a message naming them (an error record when inspecting, skipped when training).")
    var maxPixels: Int = Image.defaultMaxPixels

    func validate() throws {
        if maxPixels < 1 { throw ValidationError("--max-pixels must be at least 1 (default \(Image.defaultMaxPixels))") }
    }
}
