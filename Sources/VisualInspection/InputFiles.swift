#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The files named by a list of paths, with folders walked recursively, produced lazily
/// so that a folder of any size costs only one directory listing at a time.
///
/// Order is deterministic: the paths in the order given; inside a folder, entries sorted
/// by name (byte order), each sub-folder walked where it sorts. Hidden entries (names
/// starting with ".") inside folders are skipped; a path given explicitly is always
/// produced, even when it does not exist, so that the caller reports it.
///
/// Each produced path is the given path, joined with the entry names below it when a
/// folder was walked (`dir` + `/` + `name`), exactly as the report contract asks.
public struct InputFiles: Sequence, Sendable {
    /// The paths as given (files or folders).
    public let paths: [String]

    /// Creates the walk over `paths`.
    public init(_ paths: [String]) { self.paths = paths }

    public func makeIterator() -> Iterator { Iterator(paths: paths) }

    /// Walks the folders depth-first, one sorted listing per folder on a stack.
    public struct Iterator: IteratorProtocol {
        // Each frame: the remaining entries of one folder, already joined with its path.
        private var stack: [[String]]

        init(paths: [String]) { stack = [Array(paths.reversed())] }

        public mutating func next() -> String? {
            while var frame = stack.popLast() {
                guard let path = frame.popLast() else { continue }
                stack.append(frame)
                let isTopLevel = stack.count == 1
                if isDirectory(path) {
                    stack.append(Array(listDirectory(path).reversed()))
                    continue
                }
                if !isTopLevel && !isRegularFile(path) { continue }  // sockets, broken links
                return path
            }
            return nil
        }
    }
}

/// Whether the path names a folder (following symbolic links).
func isDirectory(_ path: String) -> Bool {
    var status = stat()
    return stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR
}

func isRegularFile(_ path: String) -> Bool {
    var status = stat()
    return stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFREG
}

/// The visible entries of a folder, sorted by name and joined with the folder's path.
/// An unreadable folder lists as empty (its files cannot be reported individually).
func listDirectory(_ path: String) -> [String] {
    guard let directory = opendir(path) else { return [] }
    defer { closedir(directory) }
    var names: [String] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if name.hasPrefix(".") { continue }
        names.append(name)
    }
    names.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    let prefix = path.hasSuffix("/") ? path : path + "/"
    return names.map { prefix + $0 }
}
