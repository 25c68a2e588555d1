//! Splits a byte stream into input records without parsing them.
//!
//! One scanner handles every envelope our sources use: JSON lines, pretty-printed objects
//! concatenated, a top-level array of objects, and wrapper documents whose `Records`, `records`
//! or `items` array holds the records (CloudTrail, Azure, Kubernetes `EventList`). It tracks only
//! nesting depth and string state, so memory is bounded by the largest record (`max_record_bytes`)
//! whatever the size of the file, and a record that is too long is skipped, not buffered.
//!
//! Recovery: a line that starts with `{"` while a record is still open means the open record was
//! cut short (an interrupted write); the open record is returned as it is (it fails to parse and
//! is rejected) and the new line starts a new record. Pretty-printed JSON never starts an inner
//! line with `{"`, so this does not split valid records. Text before a `{` on a line (a syslog or
//! Vault `prefix`) is returned separately in [`RawRecord::prefix`].

use std::io::{self, BufRead};

/// Keys whose array value holds the records of a wrapper document.
const WRAPPER_KEYS: [&str; 3] = ["Records", "records", "items"];

/// Whether `{`/`}` and `[`/`]` occur equally often: counted in byte-wide lanes, which the
/// compiler turns into SIMD (this check runs on every line of a JSON lines file).
fn brackets_balance(line: &[u8]) -> bool {
    let (mut open, mut close, mut open_sq, mut close_sq) = (0usize, 0usize, 0usize, 0usize);
    for block in line.chunks(255) {
        let (mut a, mut b, mut c, mut d) = (0u8, 0u8, 0u8, 0u8);
        for &x in block {
            a += u8::from(x == b'{');
            b += u8::from(x == b'}');
            c += u8::from(x == b'[');
            d += u8::from(x == b']');
        }
        open += usize::from(a);
        close += usize::from(b);
        open_sq += usize::from(c);
        close_sq += usize::from(d);
    }
    open == close && open_sq == close_sq
}

thread_local! {
    /// Searchers for the wrapper keys, built once per thread: `ecords"` finds both `Records`
    /// and `records` in one pass over the line (a longer key that ends so, say `"xrecords"`,
    /// only sends its line down the exact path, which finds no wrapper in it).
    static WRAPPER_FINDERS: [memchr::memmem::Finder<'static>; 2] = [
        memchr::memmem::Finder::new("ecords\""),
        memchr::memmem::Finder::new("\"items\""),
    ];
}

/// How much of an over-long record is kept to show in the rejects file.
const SAMPLE_BYTES: usize = 1024;

/// Where a record sat in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// A top-level value: one JSON line or one pretty-printed object.
    TopLevel,
    /// An element of a top-level JSON array.
    Array,
    /// An element of the array under a wrapper key (`Records`, `records`, `items`).
    Wrapper(&'static str),
}

/// Why the splitter could not produce a complete JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitProblem {
    /// Longer than the limit; `bytes` holds only the first [`SAMPLE_BYTES`].
    TooLong { len: u64 },
    /// A line with no JSON object on it.
    NotJson,
}

/// One input record: its text and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub bytes: Vec<u8>,
    /// Text before the `{` on the record's first line (syslog or Vault audit `prefix`).
    pub prefix: Option<String>,
    /// 1-based line where the record starts.
    pub line: u64,
    /// Byte offset of the record's first byte in the (decompressed) stream.
    pub offset: u64,
    /// 0-based position of the record in its file.
    pub index: u64,
    /// 0-based position inside its array for array and wrapper elements.
    pub element: Option<u64>,
    pub container: Container,
    pub problem: Option<SplitProblem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Between top-level values.
    Top,
    /// Inside a top-level array; records are its elements.
    TopArray,
    /// Inside a wrapper's record array.
    Wrapper(&'static str),
    /// After a wrapper's record array, until the wrapper object closes.
    WrapperTail,
    /// Collecting text before a `{` on a line that did not start with JSON.
    Prefix,
}

/// Iterator of [`RawRecord`]s over a buffered reader.
pub struct Splitter<R> {
    reader: R,
    scan: Scanner,
    done: bool,
    /// Leave a last record that has no end yet for a later read instead of returning it cut.
    wait_for_tail: bool,
    waiting: u64,
    /// Where a later read starts again when the stream ended inside something unfinished.
    resume_at: Option<Position>,
    /// Stop at the first boundary between top-level records once this many were returned.
    limit: Option<u64>,
    returned: u64,
    /// The limit stopped the splitter before the end of the stream.
    cut: bool,
}

/// A place in a stream: what a reader resumes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Bytes before it.
    pub offset: u64,
    /// 1-based line it is on.
    pub line: u64,
    /// Records before it.
    pub index: u64,
}

impl Position {
    pub const START: Position = Position {
        offset: 0,
        line: 1,
        index: 0,
    };
}

impl<R: BufRead> Splitter<R> {
    pub fn new(reader: R, max_record_bytes: usize) -> Self {
        Splitter::resuming(reader, max_record_bytes, Position::START)
    }

    /// Splits a stream whose first byte sits at `at` in its file (the reader is already there):
    /// records carry their place in the whole file.
    pub fn resuming(reader: R, max_record_bytes: usize, at: Position) -> Self {
        let mut scan = Scanner::new(max_record_bytes);
        scan.offset = at.offset;
        scan.line = at.line;
        scan.start_line = at.line;
        scan.index = at.index;
        Splitter {
            reader,
            scan,
            done: false,
            wait_for_tail: false,
            waiting: 0,
            resume_at: None,
            limit: None,
            returned: 0,
            cut: false,
        }
    }

    /// Returns about `records` records: stops at the first boundary between top-level records
    /// at or after that many (never inside a top-level array or a wrapper document, which
    /// could not be resumed from the middle), and [`Splitter::end`] is just after the last.
    pub fn at_most(mut self, records: u64) -> Self {
        self.limit = Some(records);
        self
    }

    /// Whether [`Splitter::at_most`] stopped it before the end of the stream.
    pub fn cut(&self) -> bool {
        self.cut
    }

    /// A file still being written: a last record on a line without its newline yet (a JSON
    /// lines writer caught mid-line) is not returned, and [`Splitter::end`] stops before it; a
    /// top-level array or wrapper document without its end yet is read again from its start
    /// next time (the elements returned meanwhile are duplicates then).
    pub fn wait_for_tail(mut self) -> Self {
        self.wait_for_tail = true;
        self
    }

    /// Where the records returned end, once the iterator is exhausted: just after the last one,
    /// or at the start of a last record left waiting.
    pub fn end(&self) -> Position {
        let s = &self.scan;
        if let Some(at) = self.resume_at {
            return at;
        }
        Position {
            offset: s.offset,
            line: s.line,
            index: s.index,
        }
    }

    /// Bytes of a last record left waiting for its end (0 when none is).
    pub fn waiting(&self) -> u64 {
        self.waiting
    }
}

/// The byte-level state machine behind [`Splitter`].
struct Scanner {
    max: usize,
    offset: u64,
    line: u64,
    mode: Mode,
    depth: u32,
    in_string: bool,
    escaped: bool,
    // the record being collected
    active: bool,
    buf: Vec<u8>,
    len: u64,
    overflow: bool,
    start_offset: u64,
    start_line: u64,
    prefix: Vec<u8>,
    index: u64,
    element: u64,
    // wrapper detection, for the top-level object only
    expect_key: bool,
    key_start: usize,
    wrapper_key: Option<&'static str>,
    after_colon: bool,
    // recovery: a newline inside an open record, and a `{` after it held back one byte
    after_newline: bool,
    held_brace: bool,
    scalar: bool,
    /// Where the top-level array or wrapper document being read began.
    top: Position,
}

impl Scanner {
    fn new(max_record_bytes: usize) -> Self {
        Scanner {
            max: max_record_bytes.max(SAMPLE_BYTES),
            offset: 0,
            line: 1,
            mode: Mode::Top,
            depth: 0,
            in_string: false,
            escaped: false,
            active: false,
            buf: Vec::new(),
            len: 0,
            overflow: false,
            start_offset: 0,
            start_line: 1,
            prefix: Vec::new(),
            index: 0,
            element: 0,
            expect_key: false,
            key_start: 0,
            wrapper_key: None,
            after_colon: false,
            after_newline: false,
            held_brace: false,
            scalar: false,
            top: Position::START,
        }
    }

    fn base(&self) -> u32 {
        match self.mode {
            Mode::Top | Mode::Prefix => 0,
            Mode::TopArray => 1,
            Mode::Wrapper(_) | Mode::WrapperTail => 2,
        }
    }

    fn start_record(&mut self, b: u8) {
        self.active = true;
        self.buf.clear();
        self.buf.push(b);
        self.len = 1;
        self.overflow = false;
        self.start_offset = self.offset;
        self.start_line = self.line;
        self.in_string = b == b'"';
        self.escaped = false;
        self.after_newline = false;
        self.scalar = b != b'{' && b != b'[';
        if !self.scalar {
            self.depth = self.base() + 1;
        }
        self.expect_key = self.mode == Mode::Top && b == b'{';
        self.wrapper_key = None;
        self.after_colon = false;
    }

    /// A record cut short swallowed the newline that ended it: drop it from the text.
    fn trim_trailing_whitespace(&mut self) {
        let keep = self
            .buf
            .iter()
            .rposition(|c| !c.is_ascii_whitespace())
            .map_or(0, |p| p + 1);
        self.buf.truncate(keep);
    }

    fn take_record(&mut self, problem: Option<SplitProblem>) -> RawRecord {
        self.active = false;
        let (container, element) = match self.mode {
            Mode::TopArray => (Container::Array, Some(self.element)),
            Mode::Wrapper(k) => (Container::Wrapper(k), Some(self.element)),
            _ => (Container::TopLevel, None),
        };
        if element.is_some() {
            self.element += 1;
        }
        let problem = problem.or(if self.overflow {
            Some(SplitProblem::TooLong { len: self.len })
        } else {
            None
        });
        let prefix = if self.prefix.is_empty() {
            None
        } else {
            Some(String::from_utf8_lossy(&std::mem::take(&mut self.prefix)).into_owned())
        };
        // A copy of exact size; the scan buffer keeps its capacity for the next record.
        let bytes = self.buf.clone();
        self.buf.clear();
        let rec = RawRecord {
            bytes,
            prefix,
            line: self.start_line,
            offset: self.start_offset,
            index: self.index,
            element,
            container,
            problem,
        };
        self.index += 1;
        self.depth = self.base();
        self.in_string = false;
        self.escaped = false;
        self.scalar = false;
        self.after_newline = false;
        rec
    }

    /// JSON lines fast path: between records at top level, a line that starts with `{`, ends
    /// with `}`, balances its brackets and names no wrapper key is one record, found with one
    /// newline search instead of a byte-by-byte scan. Anything else (a pretty-printed object, a
    /// wrapper document, a cut line, a line longer than the buffer) takes the exact path.
    fn whole_line(&mut self, chunk: &[u8]) -> Option<(usize, RawRecord)> {
        if self.active || self.held_brace || self.mode != Mode::Top {
            return None;
        }
        // Skip the newline (and blank lines) the previous record left; a BOM or NUL padding at
        // the start of the file takes the exact path.
        let skip = chunk
            .iter()
            .position(|b| !matches!(b, b'\n' | b'\r' | b' ' | b'\t'))?;
        if chunk[skip] != b'{' {
            return None;
        }
        let body = &chunk[skip..];
        let nl = memchr::memchr(b'\n', body)?;
        let mut end = nl;
        while end > 0 && matches!(body[end - 1], b'\r' | b' ' | b'\t') {
            end -= 1;
        }
        let line = &body[..end];
        if line.len() > self.max || line.last() != Some(&b'}') {
            return None;
        }
        if !brackets_balance(line)
            || WRAPPER_FINDERS.with(|f| f.iter().any(|f| f.find(line).is_some()))
        {
            return None;
        }
        self.line += chunk[..skip].iter().filter(|b| **b == b'\n').count() as u64;
        self.offset += skip as u64;
        let rec = RawRecord {
            bytes: line.to_vec(),
            prefix: None,
            line: self.line,
            offset: self.offset,
            index: self.index,
            element: None,
            container: Container::TopLevel,
            problem: None,
        };
        self.index += 1;
        self.line += 1;
        self.offset += nl as u64 + 1;
        Some((skip + nl + 1, rec))
    }

    /// Inside a string of an open record, the bytes before the next quote, backslash or newline
    /// need no state change: append them at once and return how many there were (0 when the
    /// byte-by-byte path must handle the next byte).
    fn string_run(&mut self, bytes: &[u8]) -> usize {
        if !(self.active && self.in_string) || self.escaped || self.held_brace || self.scalar {
            return 0;
        }
        let k = memchr::memchr3(b'"', b'\\', b'\n', bytes).unwrap_or(bytes.len());
        if k == 0 {
            return 0;
        }
        self.len += k as u64;
        self.offset += k as u64;
        if !self.overflow {
            self.buf.extend_from_slice(&bytes[..k]);
            if self.buf.len() > self.max {
                self.overflow = true;
                self.buf.truncate(SAMPLE_BYTES);
                self.buf.shrink_to(SAMPLE_BYTES);
            }
        }
        k
    }

    fn append(&mut self, b: u8) {
        self.len += 1;
        if self.overflow {
            return;
        }
        self.buf.push(b);
        if self.buf.len() > self.max {
            self.overflow = true;
            self.buf.truncate(SAMPLE_BYTES);
            self.buf.shrink_to(SAMPLE_BYTES);
        }
    }

    /// Feeds one byte; returns a record when one is complete.
    fn step(&mut self, b: u8) -> Option<RawRecord> {
        if self.held_brace {
            self.held_brace = false;
            if b == b'"' {
                // `{"` at the start of a line inside an open record: that record was cut short.
                self.trim_trailing_whitespace();
                let cut = self.take_record(None);
                self.mode_after_cut();
                self.begin_at_base(b'{');
                self.offset += 1; // the held `{` is now consumed
                self.feed(b);
                self.offset += 1;
                return Some(cut);
            }
            // An opening brace never completes a record, so the held byte yields nothing.
            let opened = self.feed(b'{');
            debug_assert!(opened.is_none());
            self.offset += 1;
            let out = self.feed(b);
            self.offset += 1;
            return out;
        }
        if self.active && self.after_newline && b == b'{' && !self.in_string {
            self.held_brace = true;
            return None;
        }
        let out = self.feed(b);
        self.offset += 1;
        out
    }

    /// After cutting a record at a line start, new records begin at top level unless we are
    /// inside an array.
    fn mode_after_cut(&mut self) {
        self.depth = self.base();
    }

    /// Starts a record at base level with byte `b` (`{` or `[` or a scalar).
    fn begin_at_base(&mut self, b: u8) {
        if self.mode == Mode::Top && b == b'[' {
            self.top = Position {
                offset: self.offset,
                line: self.line,
                index: self.index,
            };
            self.mode = Mode::TopArray;
            self.depth = 1;
            self.element = 0;
            return;
        }
        self.start_record(b);
    }

    fn feed(&mut self, b: u8) -> Option<RawRecord> {
        if b == b'\n' {
            self.line += 1;
        }
        if self.mode == Mode::Prefix {
            return self.feed_prefix(b);
        }
        if !self.active {
            return self.feed_between(b);
        }
        self.append(b);
        if self.scalar {
            return self.feed_scalar(b);
        }
        if self.in_string {
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
                self.end_of_string();
            } else if b == b'\n' {
                // JSON strings cannot hold a raw newline: this record is broken; resync here.
                self.in_string = false;
                self.after_newline = true;
            }
            return None;
        }
        match b {
            b'"' => {
                self.in_string = true;
                if self.expect_key && self.depth == 1 && !self.overflow {
                    self.key_start = self.buf.len();
                }
            }
            b'{' | b'[' => {
                self.depth += 1;
                if b == b'[' && self.depth == 2 && self.after_colon && self.mode == Mode::Top {
                    if let Some(key) = self.wrapper_key {
                        // A wrapper document: its records are the elements of this array.
                        self.active = false;
                        self.buf.clear();
                        self.top = self.record_start();
                        self.mode = Mode::Wrapper(key);
                        self.element = 0;
                        self.after_colon = false;
                        return None;
                    }
                }
                self.after_colon = false;
            }
            b'}' | b']' => {
                self.depth = self.depth.saturating_sub(1);
                if self.depth <= self.base() {
                    return Some(self.take_record(None));
                }
            }
            b':' if self.depth == 1 => self.after_colon = true,
            b',' if self.depth == 1 => {
                self.expect_key = self.mode == Mode::Top;
                self.wrapper_key = None;
                self.after_colon = false;
            }
            b'\n' => self.after_newline = true,
            b' ' | b'\t' | b'\r' => {}
            _ => self.after_colon = false,
        }
        if b != b'\n' && !matches!(b, b' ' | b'\t' | b'\r') {
            self.after_newline = false;
        }
        None
    }

    fn end_of_string(&mut self) {
        if !(self.expect_key && self.depth == 1 && self.mode == Mode::Top) || self.overflow {
            return;
        }
        self.expect_key = false;
        let key = &self.buf[self.key_start..self.buf.len() - 1];
        self.wrapper_key = WRAPPER_KEYS.into_iter().find(|k| k.as_bytes() == key);
    }

    fn feed_scalar(&mut self, b: u8) -> Option<RawRecord> {
        // A non-object element of an array: it ends at the next `,` `]` or newline.
        if matches!(b, b',' | b']' | b'\n') {
            self.buf.pop();
            let rec = self.take_record(Some(SplitProblem::NotJson));
            if b == b']' {
                self.close_array();
            }
            return Some(rec);
        }
        None
    }

    fn close_array(&mut self) {
        match self.mode {
            Mode::TopArray => {
                self.mode = Mode::Top;
                self.depth = 0;
            }
            Mode::Wrapper(_) => {
                self.mode = Mode::WrapperTail;
                self.depth = 1;
            }
            _ => {}
        }
    }

    fn feed_between(&mut self, b: u8) -> Option<RawRecord> {
        if self.mode == Mode::WrapperTail {
            // Skip the rest of the wrapper object (other keys after the record array).
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                return None;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        self.mode = Mode::Top;
                    }
                }
                _ => {}
            }
            return None;
        }
        let is_space = matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0);
        let at_file_start_bom = self.offset < 3 && matches!(b, 0xEF | 0xBB | 0xBF);
        if is_space || at_file_start_bom {
            return None;
        }
        match self.mode {
            Mode::Top => {
                if b == b'{' || b == b'[' {
                    self.begin_at_base(b);
                } else {
                    self.mode = Mode::Prefix;
                    self.prefix.clear();
                    self.prefix.push(b);
                    self.start_offset = self.offset;
                    self.start_line = self.line;
                }
                None
            }
            Mode::TopArray | Mode::Wrapper(_) => {
                match b {
                    b',' => {}
                    b']' => self.close_array(),
                    _ => self.start_record(b),
                }
                None
            }
            Mode::WrapperTail | Mode::Prefix => None,
        }
    }

    fn feed_prefix(&mut self, b: u8) -> Option<RawRecord> {
        match b {
            b'{' => {
                self.mode = Mode::Top;
                let (off, line) = (self.start_offset, self.start_line);
                self.start_record(b);
                self.start_offset = off;
                self.start_line = line;
                None
            }
            b'\n' => {
                self.mode = Mode::Top;
                let text = std::mem::take(&mut self.prefix);
                let trimmed_len = text.iter().rposition(|c| *c != b'\r').map_or(0, |p| p + 1);
                self.buf = text[..trimmed_len.min(SAMPLE_BYTES)].to_vec();
                self.len = trimmed_len as u64;
                self.overflow = false;
                Some(self.take_record(Some(SplitProblem::NotJson)))
            }
            _ => {
                if self.prefix.len() < self.max {
                    self.prefix.push(b);
                }
                None
            }
        }
    }

    /// Where the top-level value the stream ends inside of began, when a writer may still be
    /// writing it: a record (or the text before one) with no newline since it began, a
    /// top-level array or a wrapper document. `None` when the stream ends between values, or
    /// in a record that spans lines: a JSON lines writer ends every record with its newline,
    /// so such a record was cut (a line written half before a crash) and [`Scanner::finish`]
    /// returns it as it is, to be rejected.
    fn unfinished(&self) -> Option<Position> {
        let open_line = self.line == self.start_line && !self.held_brace;
        match self.mode {
            Mode::TopArray | Mode::Wrapper(_) | Mode::WrapperTail => Some(self.top),
            Mode::Top if self.active && open_line => Some(self.record_start()),
            Mode::Prefix if !self.prefix.is_empty() && open_line => Some(self.record_start()),
            _ => None,
        }
    }

    /// Between two top-level records: nothing open, nothing held back.
    fn between_records(&self) -> bool {
        !self.active && !self.held_brace && self.unfinished().is_none()
    }

    fn record_start(&self) -> Position {
        Position {
            offset: self.start_offset,
            line: self.start_line,
            index: self.index,
        }
    }

    fn finish(&mut self) -> Option<RawRecord> {
        if self.held_brace {
            self.held_brace = false;
            let rec = self.feed(b'{');
            self.offset += 1;
            if rec.is_some() {
                return rec;
            }
        }
        if self.mode == Mode::Prefix {
            return self.feed_prefix(b'\n');
        }
        if self.active {
            let problem = if self.scalar {
                Some(SplitProblem::NotJson)
            } else {
                None
            };
            // A record cut by the end of the input: drop the trailing newline it swallowed.
            self.trim_trailing_whitespace();
            return Some(self.take_record(problem));
        }
        None
    }
}

impl<R: BufRead> Iterator for Splitter<R> {
    type Item = io::Result<RawRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            let chunk = match self.reader.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            if chunk.is_empty() {
                self.done = true;
                if self.wait_for_tail {
                    if let Some(at) = self.scan.unfinished() {
                        // (A `{` held back at a line start is read but not yet counted.)
                        let read = self.scan.offset + u64::from(self.scan.held_brace);
                        self.waiting = read - at.offset;
                        self.resume_at = Some(at);
                        return None;
                    }
                }
                return self.scan.finish().map(Ok);
            }
            if let Some((used, rec)) = self.scan.whole_line(chunk) {
                self.reader.consume(used);
                return Some(Ok(self.returning(rec)));
            }
            let n = chunk.len();
            let mut found = None;
            let mut i = 0;
            while i < n {
                // Most bytes are inside strings: copy them in one go.
                let run = self.scan.string_run(&chunk[i..]);
                if run > 0 {
                    i += run;
                    continue;
                }
                if let Some(rec) = self.scan.step(chunk[i]) {
                    found = Some((i + 1, rec));
                    break;
                }
                i += 1;
            }
            match found {
                Some((used, rec)) => {
                    self.reader.consume(used);
                    return Some(Ok(self.returning(rec)));
                }
                None => self.reader.consume(n),
            }
        }
    }
}

impl<R: BufRead> Splitter<R> {
    /// Counts a record returned, and ends the stream after it once the limit is reached at a
    /// place a later read can start from.
    fn returning(&mut self, rec: RawRecord) -> RawRecord {
        self.returned += 1;
        if self
            .limit
            .is_some_and(|l| self.returned >= l && self.scan.between_records())
        {
            self.done = true;
            self.cut = true;
        }
        rec
    }
}

#[cfg(test)]
mod agreement {
    //! The splitter against `serde_json` on many generated inputs: every envelope, random
    //! formatting, strings full of brackets, quotes and escapes. A deterministic generator (a
    //! fixed seed), so a failure reproduces.

    use serde_json::{json, Value};

    use super::Splitter;

    /// xorshift64*: enough randomness for shapes, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    const PIECES: [&str; 12] = [
        "{",
        "}",
        "[",
        "]",
        "\"",
        "\\",
        "\n",
        "Records",
        "é",
        "{\"",
        "a b",
        "\u{1F512}",
    ];

    fn string(rng: &mut Rng) -> String {
        (0..rng.below(6))
            .map(|_| PIECES[rng.below(PIECES.len() as u64) as usize])
            .collect()
    }

    fn value(rng: &mut Rng, depth: u32) -> Value {
        match rng.below(if depth > 3 { 4 } else { 6 }) {
            0 => Value::Null,
            1 => json!(rng.below(2) == 0),
            2 => json!(rng.below(1_000_000) as i64 - 500_000),
            3 => Value::String(string(rng)),
            4 => Value::Array((0..rng.below(4)).map(|_| value(rng, depth + 1)).collect()),
            _ => object(rng, depth + 1),
        }
    }

    fn object(rng: &mut Rng, depth: u32) -> Value {
        Value::Object(
            (0..rng.below(5))
                .map(|i| (format!("{}{i}", string(rng)), value(rng, depth)))
                .collect(),
        )
    }

    fn text(v: &Value, pretty: bool) -> String {
        if pretty {
            serde_json::to_string_pretty(v).unwrap()
        } else {
            serde_json::to_string(v).unwrap()
        }
    }

    /// Records as one of the envelopes the splitter reads.
    fn envelope(rng: &mut Rng, records: &[Value]) -> String {
        let pretty = rng.below(2) == 0;
        match rng.below(4) {
            // JSON lines (or concatenated pretty objects), LF or CRLF, blank lines between.
            0 | 1 => {
                let eol = if rng.below(2) == 0 { "\n" } else { "\r\n" };
                let mut out = String::new();
                for r in records {
                    out.push_str(&text(r, pretty));
                    out.push_str(eol);
                    if rng.below(4) == 0 {
                        out.push_str(eol);
                    }
                }
                out
            }
            2 => text(&Value::Array(records.to_vec()), pretty),
            _ => text(&json!({"Records": records}), pretty),
        }
    }

    #[test]
    fn records_are_what_serde_json_reads() {
        let mut rng = Rng(0x5EED_F00D_CAFE_D00D);
        for case in 0..3_000 {
            let records: Vec<Value> = (0..1 + rng.below(5)).map(|_| object(&mut rng, 0)).collect();
            let input = envelope(&mut rng, &records);
            let got: Vec<_> = Splitter::new(input.as_bytes(), 1 << 20)
                .map(|r| r.unwrap())
                .collect();
            let parsed: Vec<Value> = got
                .iter()
                .map(|r| {
                    serde_json::from_slice(&r.bytes)
                        .unwrap_or_else(|e| panic!("case {case}: {e} in {input:?}"))
                })
                .collect();
            assert_eq!(parsed, records, "case {case}: {input:?}");
            for r in &got {
                let at = r.offset as usize;
                assert_eq!(
                    &input.as_bytes()[at..at + r.bytes.len()],
                    &r.bytes[..],
                    "case {case}"
                );
                let line = 1 + input.as_bytes()[..at]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count();
                assert_eq!(r.line as usize, line, "case {case}: {input:?}");
            }
        }
    }

    /// Arbitrary bytes (JSON-like pieces in any order): no panic, every record is a slice of
    /// the input at its offset, and where serde_json reads the whole input as a stream of
    /// objects the splitter returns exactly those.
    #[test]
    fn arbitrary_input_never_panics_and_agrees_where_the_json_is_whole() {
        let mut rng = Rng(0x000B_AD1D_EA0F_5EED);
        const BITS: [&str; 12] = [
            "{", "}", "[", "]", "\"", ":", ",", "\n", "1", "\"a\"", "\\", " ",
        ];
        for case in 0..20_000 {
            let input: String = (0..rng.below(24))
                .map(|_| BITS[rng.below(BITS.len() as u64) as usize])
                .collect();
            let got: Vec<_> = Splitter::new(input.as_bytes(), 1 << 20)
                .map(|r| r.unwrap())
                .collect();
            for r in &got {
                if r.prefix.is_none() {
                    let at = r.offset as usize;
                    assert!(at + r.bytes.len() <= input.len(), "case {case}: {input:?}");
                }
            }
            let whole: Result<Vec<Value>, _> = serde_json::Deserializer::from_str(&input)
                .into_iter::<Value>()
                .collect();
            if let Ok(values) = whole {
                if !values.is_empty() && values.iter().all(Value::is_object) {
                    let parsed: Vec<Value> = got
                        .iter()
                        .filter_map(|r| serde_json::from_slice(&r.bytes).ok())
                        .collect();
                    assert_eq!(parsed, values, "case {case}: {input:?}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &str) -> Vec<RawRecord> {
        Splitter::new(input.as_bytes(), 1 << 20)
            .map(|r| r.unwrap())
            .collect()
    }

    fn texts(input: &str) -> Vec<String> {
        split(input)
            .into_iter()
            .map(|r| String::from_utf8(r.bytes).unwrap())
            .collect()
    }

    #[test]
    fn json_lines_with_crlf_and_blank_lines() {
        let recs = split("{\"a\":1}\r\n\r\n{\"b\":\"x}\"}\r\n");
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].bytes, b"{\"a\":1}");
        assert_eq!(recs[1].bytes, b"{\"b\":\"x}\"}");
        assert_eq!((recs[1].line, recs[1].offset, recs[1].index), (3, 11, 1));
    }

    /// A file being written: the last line without its newline waits, and reading again from
    /// where the records ended returns it whole, at its place in the file.
    #[test]
    fn an_unfinished_last_line_waits_and_resumes_at_its_place() {
        let first = "{\"a\":1}\n{\"b\":2}\n{\"c\":";
        let mut s = Splitter::new(first.as_bytes(), 1 << 20).wait_for_tail();
        let recs: Vec<RawRecord> = s.by_ref().map(|r| r.unwrap()).collect();
        assert_eq!(recs.len(), 2);
        assert_eq!(s.waiting(), 5);
        let end = s.end();
        assert_eq!((end.offset, end.line, end.index), (16, 3, 2));
        let whole = format!("{first}3}}\n{{\"d\":4}}");
        let rest = &whole.as_bytes()[end.offset as usize..];
        let mut s = Splitter::resuming(rest, 1 << 20, end).wait_for_tail();
        let recs: Vec<RawRecord> = s.by_ref().map(|r| r.unwrap()).collect();
        assert_eq!(recs[0].bytes, b"{\"c\":3}");
        assert_eq!((recs[0].line, recs[0].offset, recs[0].index), (3, 16, 2));
        // A complete object needs no newline to count as read.
        assert_eq!((recs[1].line, recs[1].index), (4, 3));
        assert_eq!(s.waiting(), 0);
        assert_eq!(s.end().offset, whole.len() as u64);
        // A record cut short that spans lines is returned as it is (and rejected), as is a
        // line cut short with a line after it.
        let mut s = Splitter::new("{\"a\":\n".as_bytes(), 1 << 20).wait_for_tail();
        assert_eq!(s.by_ref().count(), 1);
        assert_eq!(s.waiting(), 0);
        let mut s = Splitter::new("{\"a\":\n{\"b\":1}\n".as_bytes(), 1 << 20).wait_for_tail();
        assert_eq!(s.by_ref().count(), 2);
        assert_eq!(s.waiting(), 0);
        // A wrapper document without its end is read again from its start next time.
        let text = "{\"x\":1}\n{\"Records\":[{\"a\":1},{\"b\"";
        let mut s = Splitter::new(text.as_bytes(), 1 << 20).wait_for_tail();
        assert_eq!(s.by_ref().count(), 2);
        assert_eq!((s.end().offset, s.end().line, s.end().index), (8, 2, 1));
        assert_eq!(s.waiting(), text.len() as u64 - 8);
        // Without waiting, an unfinished last line is returned cut (a file that is complete).
        assert_eq!(split("{\"a\":1}\n{\"b\"").len(), 2);
    }

    /// A limit ends the stream at a boundary a later read resumes from: the records of the two
    /// reads are those of one read, at the same places; a wrapper document is never cut.
    #[test]
    fn a_limit_stops_between_records_and_the_rest_resumes_there() {
        let text = "{\"a\":1}\n{\n \"b\": 2\n}\n{\"c\":3}\n{\"d\":4}\n";
        let all: Vec<RawRecord> = Splitter::new(text.as_bytes(), 1 << 20)
            .map(|r| r.unwrap())
            .collect();
        let mut s = Splitter::new(text.as_bytes(), 1 << 20).at_most(2);
        let mut recs: Vec<RawRecord> = s.by_ref().map(|r| r.unwrap()).collect();
        assert_eq!(recs.len(), 2);
        assert!(s.cut());
        let end = s.end();
        let rest = &text.as_bytes()[end.offset as usize..];
        let mut s = Splitter::resuming(rest, 1 << 20, end).at_most(5);
        recs.extend(s.by_ref().map(|r| r.unwrap()));
        assert!(!s.cut(), "read to its end");
        let places = |r: &[RawRecord]| -> Vec<(Vec<u8>, u64, u64, u64)> {
            r.iter()
                .map(|r| (r.bytes.clone(), r.line, r.offset, r.index))
                .collect()
        };
        assert_eq!(places(&recs), places(&all));
        // Inside a wrapper document the limit waits until a record after it.
        let text = "{\"Records\":[{\"a\":1},{\"b\":2},{\"c\":3}]}\n{\"d\":4}\n{\"e\":5}\n";
        let mut s = Splitter::new(text.as_bytes(), 1 << 20).at_most(1);
        assert_eq!(s.by_ref().count(), 4);
        assert!(s.cut());
        assert_eq!(s.end().index, 4);
    }

    #[test]
    fn pretty_printed_objects_are_one_record_each() {
        let recs = texts("{\n  \"a\": {\n    \"b\": 1\n  }\n}\n{\n  \"c\": 2\n}\n");
        assert_eq!(
            recs,
            vec!["{\n  \"a\": {\n    \"b\": 1\n  }\n}", "{\n  \"c\": 2\n}"]
        );
    }

    #[test]
    fn wrapper_elements_become_records() {
        let recs = split(r#"{"Records":[{"a":1},{"b":[2,3]}],"x":{"y":1}}{"z":1}"#);
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].container, Container::Wrapper("Records"));
        assert_eq!(recs[1].bytes, br#"{"b":[2,3]}"#);
        assert_eq!(recs[1].element, Some(1));
        assert_eq!(recs[2].container, Container::TopLevel);
    }

    #[test]
    fn wrapper_key_need_not_come_first() {
        let input = r#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"a":1}]}"#;
        let recs = split(input);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].container, Container::Wrapper("items"));
    }

    #[test]
    fn nested_records_key_is_not_a_wrapper() {
        let recs = split(r#"{"a":{"records":[{"x":1}]}}"#);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].container, Container::TopLevel);
    }

    #[test]
    fn top_level_array_elements() {
        let recs = split("[\n {\"a\":1},\n {\"b\":2}\n]\n");
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].container, Container::Array);
        assert_eq!(recs[1].line, 3);
    }

    #[test]
    fn cut_record_is_returned_and_the_next_line_survives() {
        let recs = texts("{\"a\":{\"b\":1}\n{\"c\":2}\n{\"d\":\"unterminated\n{\"e\":3}\n");
        assert_eq!(
            recs,
            vec![
                "{\"a\":{\"b\":1}",
                "{\"c\":2}",
                "{\"d\":\"unterminated",
                "{\"e\":3}"
            ]
        );
    }

    #[test]
    fn prefix_before_json_is_split_off() {
        let recs = split("<134>Mar  3 10:00:00 vault[1]: {\"a\":1}\nnot json at all\n");
        assert_eq!(recs.len(), 2);
        assert_eq!(
            recs[0].prefix.as_deref(),
            Some("<134>Mar  3 10:00:00 vault[1]: ")
        );
        assert_eq!(recs[0].bytes, b"{\"a\":1}");
        assert_eq!(recs[1].problem, Some(SplitProblem::NotJson));
        assert_eq!(recs[1].bytes, b"not json at all");
    }

    #[test]
    fn too_long_record_is_skipped_with_a_sample() {
        let long = format!("{{\"a\":\"{}\"}}", "x".repeat(5000));
        let input = format!("{long}\n{{\"b\":1}}\n");
        let recs: Vec<_> = Splitter::new(input.as_bytes(), 2000)
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(recs.len(), 2);
        assert_eq!(
            recs[0].problem,
            Some(SplitProblem::TooLong {
                len: long.len() as u64
            })
        );
        assert_eq!(recs[0].bytes.len(), SAMPLE_BYTES);
        assert_eq!(recs[1].bytes, b"{\"b\":1}");
    }

    #[test]
    fn bom_and_nul_padding_are_skipped() {
        let recs = split("\u{feff}{\"a\":1}\n\0\0\0{\"b\":2}");
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].offset, 3);
    }

    #[test]
    fn deep_nesting_does_not_recurse() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let input = format!("{{\"a\":{deep}}}\n{{\"b\":1}}\n");
        let recs = split(&input);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].bytes, b"{\"b\":1}");
    }

    /// Guards the string fast path: records must not depend on where read chunks end.
    #[test]
    fn chunk_boundaries_do_not_change_records() {
        let input = concat!(
            "{\"a\":\"x\\\"y\",\"b\":[1,{\"c\":\"}\"}]}\n",
            "{\"Records\":[{\"d\":\"e\"},{\"f\":\"g\\\\\"}]}\n",
            "prefix {\"h\":\"i\"}\n{\"j\":\"cut\n{\"k\":1}\n"
        );
        let whole: Vec<RawRecord> = Splitter::new(input.as_bytes(), 1 << 20)
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(whole.len(), 6);
        for cap in 1..9 {
            let reader = std::io::BufReader::with_capacity(cap, input.as_bytes());
            let chunked: Vec<RawRecord> =
                Splitter::new(reader, 1 << 20).map(|r| r.unwrap()).collect();
            assert_eq!(chunked, whole, "buffer of {cap} bytes");
        }
    }

    #[test]
    fn scalars_in_arrays_are_not_json_records() {
        let recs = split("[1, {\"a\":1}]");
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].problem, Some(SplitProblem::NotJson));
        assert_eq!(recs[1].bytes, b"{\"a\":1}");
    }
}
