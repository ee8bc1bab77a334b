package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// FileStore keeps the chain in a JSON lines file: one Record per line, in
// chain order, appended with O_APPEND and fsynced before Append returns.
// Processes sharing the file take an flock on it (exclusive to append,
// shared to read), goroutines a mutex. On open, and before every append,
// the store reads what was added since it last looked (by itself or
// another process) to learn the head and the stored event ids; it keeps an
// id → content index in memory, which is fine at dev sizes.
//
// A crash in the middle of a write leaves an incomplete last line. Nothing
// in it was acknowledged: Append had not returned. Verify reports it (the
// index it would have had and its byte offset), and Append refuses with
// ErrDamaged instead of repairing anything: an operator keeps a copy of the
// file and truncates it to that offset (`truncate -s OFFSET FILE`), after
// which the caller's retry appends the events again (records of the same
// call that did reach the file whole are skipped as already stored). A line
// that is not a record, or a file that became shorter than what the store
// already read, is refused the same way; Append never writes after bytes it
// cannot read as records.
type FileStore struct {
	path     string
	readOnly bool
	now      func() time.Time

	mu     sync.Mutex
	f      *os.File
	size   int64             // bytes read as whole records
	last   int64             // index of the last record read
	head   string            // hash of the last record read
	ids    map[string]string // event id → content digest
	damage error             // why appending is refused; nil when the file reads whole
}

var _ Store = (*FileStore)(nil)

// ErrDamaged: the file holds bytes that are not whole records; Append
// refuses until an operator repairs it (see FileStore).
var ErrDamaged = errors.New("audit: the audit file is damaged")

// ErrReadOnly: Append on a store opened with OpenFileReadOnly.
var ErrReadOnly = errors.New("audit: the store is open read-only")

// maxLine bounds one line; a record is far smaller (Validate).
const maxLine = 1 << 20

// OpenFile opens (creating it 0600, and its directory 0700, if needed) the
// JSON lines file at path for appending.
func OpenFile(path string) (*FileStore, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return newFileStore(path, f, false)
}

// OpenFileReadOnly opens an existing JSON lines file for List and Verify
// only (`remediator audit`); Append answers ErrReadOnly.
func OpenFileReadOnly(path string) (*FileStore, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		_ = f.Close()
		return nil, fmt.Errorf("audit: %s is not a regular file", path)
	}
	return newFileStore(path, f, true)
}

func newFileStore(path string, f *os.File, readOnly bool) (*FileStore, error) {
	s := &FileStore{path: path, readOnly: readOnly, now: time.Now, f: f, head: GenesisHash, ids: map[string]string{}}
	unlock, err := lockFile(context.Background(), f, false)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("audit: lock %s: %w", path, err)
	}
	defer unlock()
	if err := s.refresh(); err != nil {
		_ = f.Close()
		return nil, err
	}
	return s, nil
}

// Path is the file the store appends to.
func (s *FileStore) Path() string { return s.path }

// Damage says why Append is refused (nil: it is not).
func (s *FileStore) Damage() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.damage
}

// Close closes the file.
func (s *FileStore) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		_ = s.f.Close()
		s.f = nil
	}
}

// Append implements Store.
func (s *FileStore) Append(ctx context.Context, events ...Event) error {
	batch, err := prepare(events)
	if err != nil || len(batch) == 0 {
		return err
	}
	if s.readOnly {
		return ErrReadOnly
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errors.New("audit: the store is closed")
	}
	unlock, err := lockFile(ctx, s.f, true)
	if err != nil {
		return fmt.Errorf("audit: lock %s: %w", s.path, err)
	}
	defer unlock()
	if err := s.refresh(); err != nil {
		return err
	}
	if s.damage != nil {
		return s.damage
	}
	var buf bytes.Buffer
	index, prev := s.last, s.head
	now := s.now().UTC().Truncate(time.Microsecond)
	for _, e := range batch {
		if have, ok := s.ids[e.ID]; ok {
			if have != contentDigest(e) {
				return conflict(e.ID)
			}
			continue
		}
		index++
		r := Record{Event: e, Index: index, PrevHash: prev, RecordedAt: now}
		r.Hash = ComputeHash(r)
		line, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("audit: encode %s: %w", e.ID, err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
		prev = r.Hash
	}
	if buf.Len() == 0 {
		return nil
	}
	// One write, then fsync. On any error the in-memory state is left as
	// it was: the next append reads whatever reached the file.
	if _, err := s.f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("audit: write %s: %w", s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("audit: sync %s: %w", s.path, err)
	}
	return s.refresh()
}

// refresh reads the records added since the last look (under the file
// lock and s.mu) and recomputes s.damage.
func (s *FileStore) refresh() error {
	st, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	s.damage = nil
	if st.Size() < s.size {
		s.damage = fmt.Errorf("%w: %s is %d bytes, shorter than the %d bytes of records already read: records were removed; run `remediator audit verify`",
			ErrDamaged, s.path, st.Size(), s.size)
		return nil
	}
	if st.Size() == s.size {
		return nil
	}
	lr := newLineReader(io.NewSectionReader(s.f, s.size, st.Size()-s.size))
	for {
		line, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("audit: read %s: %w", s.path, err)
		}
		if !line.complete {
			s.damage = fmt.Errorf("%w: %s ends in an incomplete line at byte %d (a write interrupted by a crash, never acknowledged); keep a copy, then `truncate -s %d %s`",
				ErrDamaged, s.path, s.size, s.size, s.path)
			return nil
		}
		r, err := line.record()
		if err != nil {
			s.damage = fmt.Errorf("%w: %s: the line at byte %d is not a record (%v); run `remediator audit verify`", ErrDamaged, s.path, s.size, err)
			return nil
		}
		if _, ok := s.ids[r.ID]; !ok {
			s.ids[r.ID] = contentDigest(normalize(r.Event))
		}
		s.last, s.head = r.Index, r.Hash
		s.size += line.size
	}
}

// decodeRecord reads one line strictly: unknown fields are an error, so
// nothing can ride along outside the hash.
func decodeRecord(line []byte) (Record, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var r Record
	if err := dec.Decode(&r); err != nil {
		return Record{}, err
	}
	if dec.More() {
		return Record{}, errors.New("more than one JSON value on the line")
	}
	return r, nil
}

// readAll walks the whole file under a shared lock.
func (s *FileStore) readAll(ctx context.Context, fn func(line rawLine, offset int64) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errors.New("audit: the store is closed")
	}
	unlock, err := lockFile(ctx, s.f, false)
	if err != nil {
		return fmt.Errorf("audit: lock %s: %w", s.path, err)
	}
	defer unlock()
	st, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	lr := newLineReader(io.NewSectionReader(s.f, 0, st.Size()))
	var offset int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		line, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("audit: read %s: %w", s.path, err)
		}
		if err := fn(line, offset); err != nil {
			return err
		}
		offset += line.size
	}
}

// List implements Store. An incomplete last line is no record and is left
// out; any other line that is not a record is an error.
func (s *FileStore) List(ctx context.Context, remediationID string) ([]Record, error) {
	out := []Record{}
	n := 0
	err := s.readAll(ctx, func(line rawLine, offset int64) error {
		n++
		if !line.complete {
			return nil
		}
		r, err := line.record()
		if err != nil {
			return fmt.Errorf("%w: %s: line %d (byte %d) is not a record: %v", ErrDamaged, s.path, n, offset, err)
		}
		if r.RemediationID == remediationID {
			out = append(out, normalizeRecord(r))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func normalizeRecord(r Record) Record {
	r.Event = normalize(r.Event)
	r.RecordedAt = r.RecordedAt.UTC()
	return r
}

// Verify implements Store: it reads the file from the start, whatever this
// store has in memory.
func (s *FileStore) Verify(ctx context.Context) (Report, error) {
	v := newVerifier()
	err := s.readAll(ctx, func(line rawLine, offset int64) error {
		if !line.complete {
			v.bad(fmt.Sprintf("incomplete last line at byte %d (a write interrupted by a crash, never acknowledged): keep a copy, then truncate the file to %d bytes", offset, offset))
			return nil
		}
		r, err := line.record()
		if err != nil {
			v.bad(fmt.Sprintf("the line at byte %d is not a record: %v", offset, err))
			return nil
		}
		v.add(r)
		return nil
	})
	if err != nil {
		return Report{}, err
	}
	return v.report(), nil
}

// lineReader returns a file's lines one by one.
type lineReader struct{ r *bufio.Reader }

// rawLine is one line without its newline. size counts the bytes it took
// in the file, newline included; complete is false for a last line without
// a newline; a line longer than maxLine has no data and tooLong set.
type rawLine struct {
	data              []byte
	size              int64
	complete, tooLong bool
}

func newLineReader(r io.Reader) *lineReader { return &lineReader{r: bufio.NewReaderSize(r, 64<<10)} }

// next returns io.EOF after the last line.
func (l *lineReader) next() (rawLine, error) {
	var line rawLine
	for {
		chunk, err := l.r.ReadSlice('\n')
		line.size += int64(len(chunk))
		if !line.tooLong && len(line.data)+len(chunk) > maxLine+1 {
			line.tooLong, line.data = true, nil
		}
		if !line.tooLong {
			line.data = append(line.data, chunk...)
		}
		switch {
		case err == nil:
			line.complete = true
			if !line.tooLong {
				line.data = line.data[:len(line.data)-1]
			}
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF:
			if line.size == 0 {
				return rawLine{}, io.EOF
			}
			return line, nil
		default:
			return rawLine{}, err
		}
	}
}

// record decodes a whole line.
func (l rawLine) record() (Record, error) {
	if l.tooLong {
		return Record{}, fmt.Errorf("the line is longer than %d bytes", maxLine)
	}
	return decodeRecord(l.data)
}
