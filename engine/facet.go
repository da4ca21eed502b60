package engine

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/omnipick/omnipick/index"
)

// FacetKind says which catalog attribute a Facet names.
type FacetKind uint8

const (
	FacetCategory FacetKind = iota + 1 // a category path and every category below it
	FacetBrand
	FacetTag
)

var facetKindNames = [...]string{FacetCategory: "category", FacetBrand: "brand", FacetTag: "tag"}

func (k FacetKind) String() string {
	if k >= FacetCategory && int(k) < len(facetKindNames) {
		return facetKindNames[k]
	}
	return "unknown"
}

// ParseFacetKind maps an API name ("category", "brand", "tag") to its
// FacetKind.
func ParseFacetKind(s string) (FacetKind, bool) {
	for k := FacetCategory; int(k) < len(facetKindNames); k++ {
		if facetKindNames[k] == s {
			return k, true
		}
	}
	return 0, false
}

// Facet names a set of catalog products by one attribute, spelled as a
// client spells it: the engine matches it as the catalog stores the
// attribute (categories as index.NormalizeCategory writes them, brands
// and tags in lower case), so "category:Women/Knitwear/" and
// "brand:NORDIC" match what the catalog holds as "women/knitwear" and
// "Nordic".
type Facet struct {
	Kind FacetKind
	Name string
}

// appendIndexFacet appends the index's name of f ("c:women/knitwear",
// "b:nordic", "t:wool") to dst. ok is false for an unknown kind or an
// empty name. It does not allocate beyond growing dst, but for a category
// that is not already in the catalog's form.
func appendIndexFacet(dst []byte, f Facet) (_ []byte, ok bool) {
	switch f.Kind {
	case FacetCategory:
		n := len(dst) + len(index.FacetCategory)
		dst = appendCategory(append(dst, index.FacetCategory...), f.Name)
		return dst, len(dst) > n
	case FacetBrand:
		dst = append(dst, index.FacetBrand...)
	case FacetTag:
		dst = append(dst, index.FacetTag...)
	default:
		return dst, false
	}
	return appendLower(dst, f.Name), f.Name != ""
}

// appendCategory appends category path c as index.NormalizeCategory writes
// it: lower case, segments trimmed of spaces, empty segments dropped. An
// ASCII path is written without allocating.
func appendCategory(dst []byte, c string) []byte {
	for i := 0; i < len(c); i++ {
		if c[i] >= utf8.RuneSelf {
			return append(dst, index.NormalizeCategory(c)...)
		}
	}
	start := len(dst)
	for seg := range strings.SplitSeq(c, "/") {
		if seg = strings.TrimSpace(seg); seg == "" {
			continue
		}
		if len(dst) > start {
			dst = append(dst, '/')
		}
		dst = appendLower(dst, seg)
	}
	return dst
}

// appendLower appends s in lower case, as strings.ToLower writes it
// (invalid UTF-8 becomes U+FFFD), without allocating.
func appendLower(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		dst = utf8.AppendRune(dst, unicode.ToLower(r))
		i += n
	}
	return dst
}

// lookupFacet returns the dense id of facet f in the catalog, if the
// catalog has it. It uses pk.name as scratch.
func (pk *picker) lookupFacet(x *index.Index, f Facet) (uint32, bool) {
	var ok bool
	if pk.name, ok = appendIndexFacet(pk.name[:0], f); !ok {
		return 0, false
	}
	return x.FacetBytes(pk.name)
}
