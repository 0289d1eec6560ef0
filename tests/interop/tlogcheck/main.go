// Command tlogcheck checks a Battery Custody transparency log with an implementation the
// project did not write: the Go checksum database's golang.org/x/mod/sumdb/note (signed notes)
// and golang.org/x/mod/sumdb/tlog (RFC 6962 trees, tiles and proofs).
//
//	tlogcheck -url http://127.0.0.1:8001 -key 'origin+hash+key' -token T [-index I] [-old N] [-container ID]
//
// It prints "ok <check>: ..." for each check that passes and stops at the first that does not
// with "FAIL <check>: ..." on stderr and exit status 1 (2 for bad arguments).
package main

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const tileHeight = 8 // c2sp.org/tlog-tiles: always 8, so its paths leave the height out

type client struct {
	base, token string
	http        *http.Client
}

func (c *client) get(path string, auth bool) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %.200s", path, resp.Status, body)
	}
	return body, nil
}

func (c *client) getJSON(path string, into any) error {
	body, err := c.get(path, true)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("GET %s: %v", path, err)
	}
	return nil
}

// tilePath maps a tlog.Tile to its c2sp.org/tlog-tiles path. Go's sumdb paths carry the tile
// height, tile/8/L/N[.p/W], and call the record tiles (L = -1) "data"; tlog-tiles fixes the
// height at 8, drops it from the path, tile/L/N[.p/W], and calls them "entries". The N and
// .p/W encodings are the same.
func tilePath(t tlog.Tile) string {
	rest := strings.TrimPrefix(t.Path(), fmt.Sprintf("tile/%d/", t.H))
	if t.L == -1 {
		rest = "entries/" + strings.TrimPrefix(rest, "data/")
	}
	return "/log/tile/" + rest
}

// tileReader serves tlog.TileHashReader from /log/tile/<L>/<N>[.p/<W>] (hash tiles, public).
type tileReader struct {
	c       *client
	fetched map[tlog.Tile][]byte
}

func (r *tileReader) Height() int { return tileHeight }

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	for i, t := range tiles {
		if cached, ok := r.fetched[t]; ok {
			data[i] = cached
			continue
		}
		body, err := r.c.get(tilePath(t), false)
		if err != nil {
			return nil, err
		}
		r.fetched[t], data[i] = body, body
	}
	return data, nil
}

func (r *tileReader) SaveTiles([]tlog.Tile, [][]byte) {} // nothing is kept beyond this run

// openCheckpoint verifies a c2sp.org/tlog-checkpoint signed note by the log's key and returns
// its tree. Signatures by other keys (witness cosignatures) are ignored, as note.Open does.
func openCheckpoint(msg []byte, log note.Verifier) (tlog.Tree, *note.Note, error) {
	n, err := note.Open(msg, note.VerifierList(log))
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified):
		return tlog.Tree{}, nil, fmt.Errorf("no signature by %s (key hash %08x) among its %d signatures",
			log.Name(), log.KeyHash(), len(unverified.Note.UnverifiedSigs))
	case errors.As(err, &invalid):
		return tlog.Tree{}, nil, fmt.Errorf("the signature by %s does not verify", invalid.Name)
	case err != nil:
		return tlog.Tree{}, nil, fmt.Errorf("not a signed note: %v", err)
	}
	// tlog.ParseTree reads the Go checksum database's own form ("go.sum database tree" first);
	// a tlog-checkpoint starts with the origin, so its lines are read here:
	// origin, decimal tree size, base64 root hash, then optional extension lines.
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 {
		return tlog.Tree{}, nil, fmt.Errorf("checkpoint body has fewer than three lines: %q", n.Text)
	}
	if lines[0] != log.Name() {
		return tlog.Tree{}, nil, fmt.Errorf("checkpoint origin %q is not the key's name %q", lines[0], log.Name())
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return tlog.Tree{}, nil, fmt.Errorf("checkpoint tree size is not a decimal number: %q", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return tlog.Tree{}, nil, fmt.Errorf("checkpoint root is not a base64 SHA-256 hash: %q", lines[2])
	}
	tree := tlog.Tree{N: size}
	copy(tree.Hash[:], root)
	return tree, n, nil
}

func decodeHashes(hexes []string, what string) ([]tlog.Hash, error) {
	hashes := make([]tlog.Hash, len(hexes))
	for i, item := range hexes {
		raw, err := hex.DecodeString(item)
		if err != nil || len(raw) != tlog.HashSize {
			return nil, fmt.Errorf("%s hash %d is not 32 hex-encoded bytes: %q", what, i, item)
		}
		copy(hashes[i][:], raw)
	}
	return hashes, nil
}

func sameHashes(a, b []tlog.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func reversed(a []tlog.Hash) []tlog.Hash {
	out := make([]tlog.Hash, len(a))
	for i, h := range a {
		out[len(a)-1-i] = h
	}
	return out
}

// orderNote says why a project proof failed when its hashes are Go's in another order: the two
// implementations would then disagree on the proof's wire order, which must not be papered over.
func orderNote(project, golang []tlog.Hash) string {
	if sameHashes(reversed(project), golang) {
		return " (it holds tlog's hashes in reverse order: the project and RFC 6962 order differ from tlog's)"
	}
	return ""
}

// parseEntryBundle splits a tlog-tiles entry bundle: big-endian uint16 length, then the entry.
func parseEntryBundle(data []byte, want int) ([][]byte, error) {
	var entries [][]byte
	for len(data) > 0 {
		if len(data) < 2 {
			return nil, fmt.Errorf("ends inside a length prefix after %d entries", len(entries))
		}
		n := int(binary.BigEndian.Uint16(data))
		if len(data) < 2+n {
			return nil, fmt.Errorf("ends inside entry %d", len(entries))
		}
		entries, data = append(entries, data[2:2+n]), data[2+n:]
	}
	if len(entries) != want {
		return nil, fmt.Errorf("holds %d entries, not %d", len(entries), want)
	}
	return entries, nil
}

// parseTlogProof reads c2sp.org/tlog-proof@v1: header, optional "extra <base64>",
// "index <n>", one base64 hash per line, a blank line, then the checkpoint note.
func parseTlogProof(text string) (extra []byte, index int64, proof tlog.RecordProof, checkpoint string, err error) {
	head, checkpoint, found := strings.Cut(text, "\n\n")
	lines := strings.Split(head, "\n")
	if !found || lines[0] != "c2sp.org/tlog-proof@v1" {
		return nil, 0, nil, "", errors.New("not a c2sp.org/tlog-proof@v1")
	}
	lines = lines[1:]
	if len(lines) > 0 && strings.HasPrefix(lines[0], "extra ") {
		if extra, err = base64.StdEncoding.DecodeString(lines[0][len("extra "):]); err != nil {
			return nil, 0, nil, "", errors.New("extra data is not base64")
		}
		lines = lines[1:]
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
		return nil, 0, nil, "", errors.New("no index line")
	}
	if index, err = strconv.ParseInt(lines[0][len("index "):], 10, 64); err != nil {
		return nil, 0, nil, "", fmt.Errorf("bad index line %q", lines[0])
	}
	for _, line := range lines[1:] {
		raw, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(raw) != tlog.HashSize {
			return nil, 0, nil, "", fmt.Errorf("proof line %q is not a base64 hash", line)
		}
		var h tlog.Hash
		copy(h[:], raw)
		proof = append(proof, h)
	}
	return extra, index, proof, checkpoint, nil
}

type checkpointJSON struct {
	TreeSize int64  `json:"tree_size"`
	Note     string `json:"note"`
}

type consistencyJSON struct {
	First            checkpointJSON `json:"first"`
	Second           checkpointJSON `json:"second"`
	ConsistencyProof []string       `json:"consistency_proof"`
}

type bundleJSON struct {
	Checkpoint     string   `json:"checkpoint"`
	InclusionProof []string `json:"inclusion_proof"`
	Entries        []struct {
		Entry struct {
			Seq int64 `json:"seq"`
		} `json:"entry"`
		EntryHash string `json:"entry_hash"`
	} `json:"entries"`
	TlogProof string `json:"tlog_proof"`
}

type run struct {
	c       *client
	log     note.Verifier
	tree    tlog.Tree
	hashes  tlog.HashReader // authenticated against tree by tlog.TileHashReader
	entries [][]byte
}

func (r *run) check(name string, f func() (string, error)) {
	detail, err := f()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL %s: %v\n", name, err)
		os.Exit(1)
	}
	fmt.Printf("ok %s: %s\n", name, detail)
}

func (r *run) checkpoint() (string, error) {
	body, err := r.c.get("/log/checkpoint", false)
	if err != nil {
		return "", err
	}
	tree, n, err := openCheckpoint(body, r.log)
	if err != nil {
		return "", err
	}
	if tree.N == 0 {
		return "", errors.New("the signed tree is empty")
	}
	r.tree = tree
	r.hashes = tlog.TileHashReader(tree, &tileReader{c: r.c, fetched: map[tlog.Tile][]byte{}})
	return fmt.Sprintf("signature by %s verifies (%d other signature(s) ignored); tree size %d, root %s",
		r.log.Name(), len(n.UnverifiedSigs), tree.N, tree.Hash), nil
}

func (r *run) treeHash() (string, error) {
	th, err := tlog.TreeHash(r.tree.N, r.hashes)
	if err != nil {
		return "", fmt.Errorf("the hash tiles do not give the signed root: %v", err)
	}
	if th != r.tree.Hash {
		return "", fmt.Errorf("TreeHash %s over the hash tiles is not the signed root %s", th, r.tree.Hash)
	}
	return fmt.Sprintf("tlog.TreeHash over the hash tiles (tlog.TileHashReader, height %d) is the signed root", tileHeight), nil
}

func (r *run) entryBundles() (string, error) {
	indexes := make([]int64, r.tree.N)
	for i := range indexes {
		indexes[i] = tlog.StoredHashIndex(0, int64(i))
	}
	leaves, err := r.hashes.ReadHashes(indexes)
	if err != nil {
		return "", fmt.Errorf("reading the level-0 hashes: %v", err)
	}
	bundles := (r.tree.N + 255) / 256
	var bad []string
	for k := int64(0); k < bundles; k++ {
		width := int(min(256, r.tree.N-256*k))
		t := tlog.Tile{H: tileHeight, L: -1, N: k, W: width}
		data, err := r.c.get(tilePath(t), true)
		if err != nil {
			return "", err
		}
		entries, err := parseEntryBundle(data, width)
		if err != nil {
			return "", fmt.Errorf("%s: %v", tilePath(t), err)
		}
		for j, e := range entries {
			index := 256*k + int64(j)
			if h := tlog.RecordHash(e); h != leaves[index] {
				bad = append(bad, fmt.Sprintf("entry %d: RecordHash(E) %s is not the level-0 tile hash %s", index, h, leaves[index]))
			}
		}
		r.entries = append(r.entries, entries...)
	}
	if bad != nil {
		return "", fmt.Errorf("%d of %d entries do not hash to their leaf: %s", len(bad), r.tree.N, strings.Join(bad, "; "))
	}
	return fmt.Sprintf("%d entries in %d entry bundles, each tlog.RecordHash(E) equals its level-0 tile hash", r.tree.N, bundles), nil
}

func (r *run) inclusion(index int64) (string, error) {
	if index < 0 || index >= r.tree.N {
		return "", fmt.Errorf("entry %d is not in a tree of size %d", index, r.tree.N)
	}
	proof, err := tlog.ProveRecord(r.tree.N, index, r.hashes)
	if err != nil {
		return "", err
	}
	if err := tlog.CheckRecord(proof, r.tree.N, r.tree.Hash, index, tlog.RecordHash(r.entries[index])); err != nil {
		return "", fmt.Errorf("entry %d: %v", index, err)
	}
	return fmt.Sprintf("tlog.ProveRecord/CheckRecord: entry %d in tree %d (%d hashes)", index, r.tree.N, len(proof)), nil
}

func (r *run) goConsistency(old int64) (string, error) {
	if old < 1 || old > r.tree.N {
		return "", fmt.Errorf("size %d is not within 1..%d", old, r.tree.N)
	}
	oldRoot, err := tlog.TreeHash(old, r.hashes)
	if err != nil {
		return "", err
	}
	proof, err := tlog.ProveTree(r.tree.N, old, r.hashes)
	if err != nil {
		return "", err
	}
	if err := tlog.CheckTree(proof, r.tree.N, r.tree.Hash, old, oldRoot); err != nil {
		return "", fmt.Errorf("%d -> %d: %v", old, r.tree.N, err)
	}
	return fmt.Sprintf("tlog.ProveTree/CheckTree: tree %d extends tree %d (%d hashes)", r.tree.N, old, len(proof)), nil
}

func (r *run) projectConsistency(old int64) (string, error) {
	var answer consistencyJSON
	path := fmt.Sprintf("/v1/checkpoints/consistency?first=%d&second=%d", old, r.tree.N)
	if err := r.c.getJSON(path, &answer); err != nil {
		return "", err
	}
	first, _, err := openCheckpoint([]byte(answer.First.Note), r.log)
	if err != nil {
		return "", fmt.Errorf("first checkpoint: %v", err)
	}
	second, _, err := openCheckpoint([]byte(answer.Second.Note), r.log)
	if err != nil {
		return "", fmt.Errorf("second checkpoint: %v", err)
	}
	if first.N != old || second != r.tree {
		return "", fmt.Errorf("the answer's checkpoints are of sizes %d and %d, not %d and the log's %d", first.N, second.N, old, r.tree.N)
	}
	if fromTiles, err := tlog.TreeHash(old, r.hashes); err != nil || fromTiles != first.Hash {
		return "", fmt.Errorf("the signed root of size %d is not the one the current tiles give (%s, %v)", old, fromTiles, err)
	}
	proof, err := decodeHashes(answer.ConsistencyProof, "consistency proof")
	if err != nil {
		return "", err
	}
	goProof, err := tlog.ProveTree(r.tree.N, old, r.hashes)
	if err != nil {
		return "", err
	}
	if err := tlog.CheckTree(proof, r.tree.N, r.tree.Hash, old, first.Hash); err != nil {
		return "", fmt.Errorf("tlog.CheckTree rejects the project's proof %d -> %d: %v%s", old, r.tree.N, err, orderNote(proof, goProof))
	}
	if !sameHashes(proof, goProof) {
		return "", errors.New("the project's proof verifies but is not tlog.ProveTree's")
	}
	return fmt.Sprintf("tlog.CheckTree accepts the project's proof %d -> %d as served (%d hashes, the same as tlog.ProveTree's)", old, r.tree.N, len(proof)), nil
}

// bundleTree verifies a bundle's checkpoint and that its root is the one the log's tiles give.
func (r *run) bundleTree(msg string) (tlog.Tree, error) {
	tree, _, err := openCheckpoint([]byte(msg), r.log)
	if err != nil {
		return tlog.Tree{}, err
	}
	if tree.N > r.tree.N {
		return tlog.Tree{}, fmt.Errorf("its checkpoint (size %d) is newer than the log's (%d)", tree.N, r.tree.N)
	}
	if th, err := tlog.TreeHash(tree.N, r.hashes); err != nil || th != tree.Hash {
		return tlog.Tree{}, fmt.Errorf("its checkpoint root of size %d is not the one the tiles give", tree.N)
	}
	return tree, nil
}

func (r *run) bundleInclusion(b *bundleJSON) (string, error) {
	if len(b.Entries) == 0 {
		return "", errors.New("the bundle has no entries")
	}
	tree, err := r.bundleTree(b.Checkpoint)
	if err != nil {
		return "", err
	}
	for _, e := range b.Entries {
		hashes, err := decodeHashes([]string{e.EntryHash}, "entry_hash")
		if err != nil {
			return "", err
		}
		if seq := e.Entry.Seq; seq < 0 || seq >= tree.N || hashes[0] != tlog.RecordHash(r.entries[seq]) {
			return "", fmt.Errorf("entry %d: the bundle's entry_hash is not the log's leaf", seq)
		}
	}
	head := b.Entries[len(b.Entries)-1]
	proof, err := decodeHashes(b.InclusionProof, "inclusion proof")
	if err != nil {
		return "", err
	}
	leaf := tlog.RecordHash(r.entries[head.Entry.Seq])
	goProof, err := tlog.ProveRecord(tree.N, head.Entry.Seq, r.hashes)
	if err != nil {
		return "", err
	}
	if err := tlog.CheckRecord(proof, tree.N, tree.Hash, head.Entry.Seq, leaf); err != nil {
		return "", fmt.Errorf("tlog.CheckRecord rejects the project's proof of entry %d: %v%s", head.Entry.Seq, err, orderNote(proof, goProof))
	}
	if !sameHashes(proof, goProof) {
		return "", errors.New("the project's proof verifies but is not tlog.ProveRecord's")
	}
	return fmt.Sprintf("tlog.CheckRecord accepts the project's proof of entry %d in tree %d as served (%d hashes, the same as tlog.ProveRecord's); %d entry hashes are the log's leaves",
		head.Entry.Seq, tree.N, len(proof), len(b.Entries)), nil
}

func (r *run) bundleTlogProof(b *bundleJSON) (string, error) {
	extra, index, proof, msg, err := parseTlogProof(b.TlogProof)
	if err != nil {
		return "", err
	}
	tree, err := r.bundleTree(msg)
	if err != nil {
		return "", err
	}
	if head := b.Entries[len(b.Entries)-1].Entry.Seq; index != head {
		return "", fmt.Errorf("it proves entry %d, not the head entry %d", index, head)
	}
	if extra == nil || tlog.RecordHash(extra) != tlog.RecordHash(r.entries[index]) {
		return "", fmt.Errorf("its extra data is not entry %d as the entry bundle serves it", index)
	}
	if err := tlog.CheckRecord(proof, tree.N, tree.Hash, index, tlog.RecordHash(extra)); err != nil {
		return "", fmt.Errorf("tlog.CheckRecord rejects it: %v", err)
	}
	return fmt.Sprintf("c2sp.org/tlog-proof of entry %d (the entry itself as extra data) passes tlog.CheckRecord", index), nil
}

func main() {
	base := flag.String("url", "", "the ledger API's base URL")
	key := flag.String("key", "", "the log's verifier key, name+hash+base64 key")
	token := flag.String("token", "", "an auditor token (entry bundles, proofs)")
	index := flag.Int64("index", -1, "the entry to prove included (default: the last)")
	old := flag.Int64("old", 0, "an older signed tree size to prove consistency from (0: none)")
	container := flag.String("container", "", "a container whose bundle to check (empty: none)")
	flag.Parse()
	if *base == "" || *key == "" || *token == "" {
		fmt.Fprintln(os.Stderr, "usage: tlogcheck -url URL -key VERIFIER_KEY -token AUDITOR_TOKEN [-index I] [-old N] [-container ID]")
		os.Exit(2)
	}
	verifier, err := note.NewVerifier(strings.TrimSpace(*key))
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL verifier key: %v\n", err)
		os.Exit(2)
	}
	r := &run{c: &client{base: strings.TrimRight(*base, "/"), token: *token, http: &http.Client{Timeout: 30 * time.Second}}, log: verifier}

	r.check("checkpoint", r.checkpoint)
	r.check("tree hash", r.treeHash)
	r.check("entry bundles", r.entryBundles)
	if *index < 0 {
		*index = r.tree.N - 1
	}
	r.check("inclusion (Go proof)", func() (string, error) { return r.inclusion(*index) })
	if *old > 0 {
		r.check("consistency (Go proof)", func() (string, error) { return r.goConsistency(*old) })
		r.check("consistency (project proof)", func() (string, error) { return r.projectConsistency(*old) })
	}
	if *container != "" {
		var b bundleJSON
		r.check("bundle", func() (string, error) {
			path := "/v1/containers/" + url.PathEscape(*container) + "/bundle"
			return fmt.Sprintf("fetched %s", path), r.c.getJSON(path, &b)
		})
		r.check("bundle inclusion (project proof)", func() (string, error) { return r.bundleInclusion(&b) })
		r.check("bundle tlog-proof", func() (string, error) { return r.bundleTlogProof(&b) })
	}
	fmt.Println("all checks passed")
}
