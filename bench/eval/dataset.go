package eval

import (
	"bufio"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/omnipick/omnipick/engine"
)

// Stock is the quantity every SKU gets at location "online": the data sets
// carry no stock levels.
const Stock = 1_000_000

// OnlineLocation is the location the loaders stock every SKU at.
const OnlineLocation = "online"

// Names of the data sets this package can load.
const (
	SetHM           = "hm"
	SetOnlineRetail = "online_retail"
	SetTaobao       = "taobao"
)

// SetNames lists the data sets this package can load.
func SetNames() []string { return []string{SetHM, SetOnlineRetail, SetTaobao} }

// ErrUnknownSet is returned for a data set name not in SetNames.
var ErrUnknownSet = errors.New("eval: unknown data set")

// spec describes one data set's files and how to read them.
type spec struct {
	catalogFile string // relative to the set's directory
	eventsFile  string
	holdoutFile string
	// Holdout column names.
	holdoutCustomer, holdoutItem string
	cut                          int64 // unix ms: first instant after train
	// valCut splits train for SplitValidation: events before it are
	// learned from, purchases at or after it are the targets.
	valCut int64
	// earlier is a second, earlier validation window [cut, end) of train
	// (Options.Fold 2): a change that helps should help on both.
	earlier struct{ cut, end int64 }
	// horizon is a third window (Options.Fold 3) as long as holdout_dev's
	// and ending where train ends: learn before horizon, score every train
	// purchase from it on. Dev scores picks weeks after the cut on
	// online_retail (ten), and a ranking that wins on the next month can
	// lose over ten weeks (the learned blend did: docs/ranking.md).
	horizon int64
	// presentByAnyEvent: a customer is in the holdout population once any
	// of their events is learned from (taobao's holdout: "users seen in
	// train"); otherwise only a purchase counts (hm, online_retail).
	presentByAnyEvent bool
	// catalogFromTrain: the catalog file lists the items seen in train
	// (online_retail, taobao), so on SplitValidation only those seen
	// before the validation cut are fed, as the holdout's catalog holds
	// only items seen before its cut. hm's catalog is H&M's whole one.
	catalogFromTrain bool
	catalog          func(c *csvFile, l *loader) error
	events           func(c *csvFile, l *loader) error
}

var specs = map[string]*spec{
	SetHM: {
		catalogFile:     "articles.csv.gz",
		eventsFile:      "train/transactions.csv.gz",
		holdoutFile:     "holdout_dev/holdout_purchases.csv",
		holdoutCustomer: "customer_id",
		holdoutItem:     "article_id",
		cut:             1600560000000,                                          // 2020-09-20T00:00:00Z
		valCut:          1600387200000,                                          // 2020-09-18: learn 2 days, validate 2
		earlier:         struct{ cut, end int64 }{1600300800000, 1600387200000}, // learn 09-16, validate 09-17
		horizon:         1600300800000,                                          // learn 09-16, validate 09-17..19: dev's 3 days
		catalog:         hmCatalog,
		events:          hmEvents,
	},
	SetOnlineRetail: {
		catalogFile:      "train/items.csv",
		eventsFile:       "train/transactions.csv.gz",
		holdoutFile:      "holdout_dev/holdout_purchases.csv",
		holdoutCustomer:  "customer_id",
		holdoutItem:      "stock_code",
		cut:              1317427200000,                                          // 2011-10-01T00:00:00 (UK local time read as UTC)
		valCut:           1314835200000,                                          // 2011-09-01: validate on the last train month
		earlier:          struct{ cut, end int64 }{1312156800000, 1314835200000}, // validate on August 2011
		horizon:          1311379200000,                                          // 2011-07-23: validate 10 weeks, dev's length
		catalogFromTrain: true,
		catalog:          retailCatalog,
		events:           retailEvents,
	},
	SetTaobao: {
		catalogFile:       "train/items.csv",
		eventsFile:        "train/events.csv.gz",
		holdoutFile:       "holdout_dev/holdout_purchases.csv",
		holdoutCustomer:   "user_id",
		holdoutItem:       "item_id",
		cut:               1512144000000,                                          // 2017-12-02T00:00:00+08:00
		valCut:            1512057600000,                                          // 2017-12-01T00:00:00+08:00: validate on the last train day
		earlier:           struct{ cut, end int64 }{1511971200000, 1512057600000}, // validate on 2017-11-30 (UTC+8)
		horizon:           1511971200000,                                          // validate 11-30..12-01: dev's 2 days
		presentByAnyEvent: true,
		catalogFromTrain:  true,
		catalog:           taobaoCatalog,
		events:            taobaoEvents,
	},
}

// Dataset streams the train split of one data set as engine.Records. Its
// directory is <dataDir>/<name> and is laid out as ../shared/data/<name>.
// Each call re-reads the files; nothing is cached between calls.
//
// A Dataset is not safe for concurrent use.
type Dataset struct {
	name  string
	dir   string
	spec  *spec
	stats LoadStats
}

// LoadStats counts what the last Catalog or Events call read and emitted.
type LoadStats struct {
	Products  int            `json:"products"`
	Inventory int            `json:"inventory"`
	Rows      int            `json:"event_rows"` // data rows of the events file
	Events    map[string]int `json:"events"`     // emitted events by type name
	Skipped   map[string]int `json:"skipped"`    // rows not emitted, by reason
}

// OpenDataset returns the data set name stored under dataDir/name. It
// checks that the set's files exist but reads none of them.
func OpenDataset(name, dataDir string) (*Dataset, error) {
	sp, ok := specs[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (have %s)", ErrUnknownSet, name, strings.Join(SetNames(), ", "))
	}
	d := &Dataset{name: name, dir: filepath.Join(dataDir, name), spec: sp}
	for _, f := range []string{sp.catalogFile, sp.eventsFile} {
		if _, err := os.Stat(filepath.Join(d.dir, f)); err != nil {
			return nil, fmt.Errorf("cannot open data set %q: %w", name, err)
		}
	}
	return d, nil
}

// Name returns the data set's name, e.g. "hm".
func (d *Dataset) Name() string { return d.name }

// Cut returns the first instant after the train split, in unix
// milliseconds: every train event is before it, every holdout row at or
// after it. Picks are evaluated as of Cut.
func (d *Dataset) Cut() int64 { return d.spec.cut }

// window returns the validation window [cut, end) of fold (Options.Fold;
// end 0: to the end of train).
func (sp *spec) window(fold int) (cut, end int64) {
	switch fold {
	case 2:
		return sp.earlier.cut, sp.earlier.end
	case 3:
		return sp.horizon, 0
	}
	return sp.valCut, 0
}

// HoldoutPath returns the set's default holdout file,
// <dir>/holdout_dev/holdout_purchases.csv.
func (d *Dataset) HoldoutPath() string { return filepath.Join(d.dir, d.spec.holdoutFile) }

// Stats returns the counts of the last Catalog or Events call.
func (d *Dataset) Stats() LoadStats { return d.stats }

// Catalog calls fn with one OpProduct Record per catalog item, then one
// OpInventory Record per SKU. fn must not keep r after it returns, but may
// keep anything r holds: strings and slices in a Record are never reused.
// Catalog stops at and returns the first error of fn.
func (d *Dataset) Catalog(fn func(r *engine.Record) error) error {
	d.stats = LoadStats{Events: map[string]int{}, Skipped: map[string]int{}}
	l := &loader{emit: fn, stats: &d.stats, cut: d.spec.cut}
	path := filepath.Join(d.dir, d.spec.catalogFile)
	err := readCSV(path, func(c *csvFile) error { return d.spec.catalog(c, l) })
	if err != nil {
		return err
	}
	return l.inventory()
}

// Events calls fn with one OpEvent Record per train event, in time order.
// It returns an error if the file is not in time order or holds an event at
// or after Cut. fn must not keep r after it returns, but may keep the
// strings r holds. Events stops at and returns the first error of fn.
func (d *Dataset) Events(fn func(r *engine.Record) error) error {
	d.stats = LoadStats{Events: map[string]int{}, Skipped: map[string]int{}}
	l := &loader{emit: fn, stats: &d.stats, cut: d.spec.cut}
	path := filepath.Join(d.dir, d.spec.eventsFile)
	return readCSV(path, func(c *csvFile) error { return d.spec.events(c, l) })
}

// Replay calls Catalog and then Events with fn: the whole train split in
// the order an engine should apply it. Stats then holds both calls' counts.
func (d *Dataset) Replay(fn func(r *engine.Record) error) error {
	if err := d.Catalog(fn); err != nil {
		return err
	}
	cat := d.stats
	if err := d.Events(fn); err != nil {
		return err
	}
	d.stats.Products, d.stats.Inventory = cat.Products, cat.Inventory
	for k, v := range cat.Skipped {
		d.stats.Skipped[k] += v
	}
	return nil
}

// ReadHoldout reads a holdout file of this set (HoldoutPath, or another file
// with the same columns) and returns, for each customer, the distinct items
// they bought in it, in file order.
func (d *Dataset) ReadHoldout(path string) (map[string][]string, error) {
	out := map[string][]string{}
	err := readCSV(path, func(c *csvFile) error {
		ci, err := c.col(d.spec.holdoutCustomer)
		if err != nil {
			return err
		}
		ii, err := c.col(d.spec.holdoutItem)
		if err != nil {
			return err
		}
		return c.each(func(row []string) error {
			cust, item := row[ci], row[ii]
			if cust == "" || item == "" {
				return c.errorf(ci, "empty customer or item")
			}
			items, ok := out[cust]
			if !ok {
				cust = strings.Clone(cust)
			}
			if !containsString(items, item) {
				out[cust] = append(items, strings.Clone(item))
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func containsString(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// loader is the state one Catalog or Events call shares with the set's
// parser: the callback, the record being filled and the checks on it.
type loader struct {
	emit   func(*engine.Record) error
	stats  *LoadStats
	cut    int64
	rec    engine.Record
	skus   []string // every SKU emitted, for the inventory records
	lastTS int64
}

// product emits p with one one-size variant whose SKU is p.ID.
func (l *loader) product(p engine.Product) error {
	p.Variants = []engine.Variant{{SKU: p.ID}}
	l.rec = engine.Record{Op: engine.OpProduct, Product: p}
	l.skus = append(l.skus, p.ID)
	l.stats.Products++
	return l.emit(&l.rec)
}

// inventory emits the stock of every SKU seen by product.
func (l *loader) inventory() error {
	for _, sku := range l.skus {
		l.rec = engine.Record{Op: engine.OpInventory, Inventory: engine.Inventory{
			SKU: sku, Location: OnlineLocation, Quantity: Stock,
		}}
		if err := l.emit(&l.rec); err != nil {
			return err
		}
	}
	l.stats.Inventory += len(l.skus)
	l.skus = nil
	return nil
}

// event checks e's time and emits it.
func (l *loader) event(c *csvFile, col int, e engine.Event) error {
	if e.TS < l.lastTS {
		return c.errorf(col, "event time %d before the previous event's %d: file not in time order", e.TS, l.lastTS)
	}
	if e.TS >= l.cut {
		return c.errorf(col, "event time %d not before the train cut %d", e.TS, l.cut)
	}
	l.lastTS = e.TS
	l.rec = engine.Record{Op: engine.OpEvent, Event: e}
	l.stats.Events[e.Type.String()]++
	return l.emit(&l.rec)
}

func (l *loader) skip(reason string) { l.stats.Skipped[reason]++ }

// csvFile reads a CSV file with a header row, gzip-compressed if its name
// ends in ".gz".
type csvFile struct {
	path string
	r    *csv.Reader
	cols map[string]int
}

// readCSV opens path, reads its header and calls fn with it.
func readCSV(path string, fn func(c *csvFile) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot open %q: %w", path, err)
	}
	defer f.Close()
	var r io.Reader = bufio.NewReaderSize(f, 1<<16)
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return fmt.Errorf("cannot read %q: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	c, err := newCSVFile(path, r)
	if err != nil {
		return err
	}
	return fn(c)
}

// newCSVFile reads the header of a CSV stream.
func newCSVFile(path string, r io.Reader) (*csvFile, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("cannot read the header of %q: %w", path, err)
	}
	c := &csvFile{path: path, r: cr, cols: make(map[string]int, len(head))}
	for i, h := range head {
		c.cols[strings.TrimPrefix(h, "\ufeff")] = i
	}
	return c, nil
}

// col returns the index of the named column.
func (c *csvFile) col(name string) (int, error) {
	i, ok := c.cols[name]
	if !ok {
		have := make([]string, 0, len(c.cols))
		for k := range c.cols {
			have = append(have, k)
		}
		sort.Strings(have)
		return 0, fmt.Errorf("%q has no column %q (has %s)", c.path, name, strings.Join(have, ","))
	}
	return i, nil
}

// cols returns the indexes of the named columns.
func (c *csvFile) columns(names ...string) ([]int, error) {
	idx := make([]int, len(names))
	for i, n := range names {
		var err error
		if idx[i], err = c.col(n); err != nil {
			return nil, err
		}
	}
	return idx, nil
}

// read returns the next row; its slice is reused by the next call, the
// strings are not. io.EOF marks the clean end.
func (c *csvFile) read() ([]string, error) {
	row, err := c.r.Read()
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("cannot read %q: %w", c.path, err)
	}
	return row, err
}

// each calls fn with every remaining row, in order, until the clean end
// (nil), a read error or fn's error. The row's slice is reused between
// calls; its strings are not.
func (c *csvFile) each(fn func(row []string) error) error {
	for {
		row, err := c.read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(row); err != nil {
			return err
		}
	}
}

// errorf returns an error naming the file, line and column of the last row.
func (c *csvFile) errorf(col int, format string, args ...any) error {
	line, _ := c.r.FieldPos(col)
	return fmt.Errorf("%s:%d: %s", c.path, line, fmt.Sprintf(format, args...))
}

// slug lowercases s and turns every run of other characters than a-z and
// 0-9 into one '-': "Baby/Children" -> "baby-children".
func slug(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	dash := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		if ('a' <= ch && ch <= 'z') || ('0' <= ch && ch <= '9') {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteByte(ch)
			continue
		}
		dash = true
	}
	return b.String()
}

// interner returns one shared copy of each distinct string it is given.
// Catalog fields repeat a few thousand values over 100k rows.
type interner map[string]string

func (in interner) get(s string) string {
	if v, ok := in[s]; ok {
		return v
	}
	s = strings.Clone(s)
	in[s] = s
	return s
}

// slugged returns prefix+slug(s), interned; "" if s slugs to nothing.
func (in interner) slugged(prefix, s string) string {
	key := prefix + "\x00" + s
	if v, ok := in[key]; ok {
		return v
	}
	v := slug(s)
	if v != "" {
		v = prefix + v
	}
	in[key] = v
	return v
}

// FNV-1a, 64 bit, over strings without allocating.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}
