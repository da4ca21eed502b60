package api

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/valyala/fastjson"
)

// This file holds the JSON syntax checks the Decoder runs before fastjson
// parses anything: checkJSON, a strict validator (RFC 8259) that neither
// recurses nor allocates on valid input, and scanValue, which splits a
// body into objects by structure alone.
//
// Why not a library: fastjson.Validate recurses and builds an error with
// fmt.Errorf at every nesting level on the way out (the cost checkJSON
// exists to avoid), and encoding/json.Valid has no depth limit below 10,000,
// gives no position for a client's error and was measured 2x slower on
// event lines (BenchmarkCheckJSON).

// Reasons checkJSON returns.
const (
	reasonEndOfInput = "invalid json: unexpected end of input"
	reasonTooDeep    = "invalid json: nested deeper than 64 levels"
)

// jsonState is what the scanner expects at the next byte that is not
// whitespace.
type jsonState uint8

const (
	stateValue      jsonState = iota // a value: after ':' or an array's ','
	stateValueOrEnd                  // a value or ']': just after '['
	stateKey                         // a member's key: after an object's ','
	stateKeyOrEnd                    // a key or '}': just after '{'
	stateAfter                       // ',' or the closing bracket; the end of input at depth 0
	stateBad                         // an error was found (see jsonScanner)
)

// jsonClass sorts the bytes that may start a value.
type jsonClass uint8

const (
	classInvalid jsonClass = iota
	classOpen              // '{' or '['
	classString            // '"'
	classLiteral           // 't', 'f', 'n'
	classNumber            // '-', '0'..'9'
)

var valueStart = func() (t [256]jsonClass) {
	t['{'], t['['], t['"'] = classOpen, classOpen, classString
	t['t'], t['f'], t['n'] = classLiteral, classLiteral, classLiteral
	t['-'] = classNumber
	for c := '0'; c <= '9'; c++ {
		t[c] = classNumber
	}
	return t
}()

// jsonScanner is the state of one checkJSON call but the position, which
// its steps take and return so that it stays in a register. A step that
// finds an error returns stateBad, with the reason in reason when it is
// more than an unexpected byte at the position returned.
type jsonScanner struct {
	b       []byte
	depth   int    // open objects and arrays
	objects uint64 // bit k is set when nesting level k+1 is an object
	reason  string
}

// checkJSON returns why b is not one valid JSON value (RFC 8259) nested at
// most maxNesting deep, surrounded by optional whitespace, or "" if it is.
// It neither allocates (but on failure) nor recurses.
func checkJSON(b []byte) string {
	s := jsonScanner{b: b}
	state := stateValue
	for i := skipWS(b, 0); i < len(b); i = skipWS(b, i) {
		switch state {
		case stateValue, stateValueOrEnd:
			i, state = s.value(i, state)
		case stateKey, stateKeyOrEnd:
			i, state = s.key(i, state)
		case stateAfter:
			i, state = s.after(i)
		}
		if state == stateBad {
			return s.fault(i)
		}
	}
	if state == stateAfter && s.depth == 0 {
		return ""
	}
	return reasonEndOfInput
}

// fault returns the reason of the error a step found at b[i].
func (s *jsonScanner) fault(i int) string {
	if s.reason != "" {
		return s.reason
	}
	return unexpectedByte(s.b, i)
}

// value scans the value that starts at b[i], or in stateValueOrEnd the
// ']' of an empty array.
func (s *jsonScanner) value(i int, state jsonState) (int, jsonState) {
	c := s.b[i]
	switch valueStart[c] {
	case classString:
		return s.str(i + 1)
	case classOpen:
		return s.open(i, c)
	case classLiteral:
		return s.literal(i, c)
	case classNumber:
		return s.number(i)
	}
	if c == ']' && state == stateValueOrEnd {
		s.depth--
		return i + 1, stateAfter
	}
	return i, stateBad
}

// str scans the string whose opening quote is just before b[i].
func (s *jsonScanner) str(i int) (int, jsonState) {
	end, reason := scanJSONString(s.b, i)
	if reason != "" {
		s.reason = reason
		return end, stateBad
	}
	return end, stateAfter
}

// open enters the object or array that b[i] opens.
func (s *jsonScanner) open(i int, c byte) (int, jsonState) {
	if s.depth == maxNesting {
		s.reason = reasonTooDeep
		return i, stateBad
	}
	if c == '[' {
		s.objects &^= 1 << s.depth
		s.depth++
		return i + 1, stateValueOrEnd
	}
	s.objects |= 1 << s.depth
	s.depth++
	return i + 1, stateKeyOrEnd
}

// key scans a member's key and the colon after it, or in stateKeyOrEnd
// the '}' of an empty object.
func (s *jsonScanner) key(i int, state jsonState) (int, jsonState) {
	b := s.b
	switch {
	case b[i] == '}' && state == stateKeyOrEnd:
		s.depth--
		return i + 1, stateAfter
	case b[i] != '"':
		return i, stateBad
	}
	i, state = s.str(i + 1)
	if state == stateBad {
		return i, state
	}
	if i = skipWS(b, i); i >= len(b) || b[i] != ':' {
		return i, stateBad
	}
	return i + 1, stateValue
}

// after scans what follows a value: a comma or the closing bracket of the
// object or array it is in.
func (s *jsonScanner) after(i int) (int, jsonState) {
	if s.depth == 0 {
		return i, stateBad
	}
	inObject := s.objects>>(s.depth-1)&1 == 1
	switch c := s.b[i]; {
	case c == ',' && inObject:
		return i + 1, stateKey
	case c == ',':
		return i + 1, stateValue
	case c == '}' && inObject || c == ']' && !inObject:
		s.depth--
		return i + 1, stateAfter
	}
	return i, stateBad
}

// literal scans true, false or null, whichever starts with c.
func (s *jsonScanner) literal(i int, c byte) (int, jsonState) {
	lit := "null"
	if c == 't' {
		lit = "true"
	} else if c == 'f' {
		lit = "false"
	}
	if !bytes.HasPrefix(s.b[i:], []byte(lit)) {
		return i, stateBad
	}
	return i + len(lit), stateAfter
}

// number scans the run of bytes a number may hold and checks it against
// the grammar.
func (s *jsonScanner) number(i int) (int, jsonState) {
	b, j := s.b, i+1
	for j < len(b) && (b[j] >= '0' && b[j] <= '9' || b[j] == '.' || b[j] == 'e' || b[j] == 'E' || b[j] == '+' || b[j] == '-') {
		j++
	}
	if !isJSONNumber(b[i:j]) {
		s.reason = fmt.Sprintf("invalid json: invalid number at byte %d", i)
		return i, stateBad
	}
	return j, stateAfter
}

// scanJSONString checks the JSON string whose opening quote is just before
// b[i] and returns the index after its closing quote.
func scanJSONString(b []byte, i int) (int, string) {
	for i < len(b) {
		switch c := b[i]; {
		case c == '"':
			return i + 1, ""
		case c == '\\':
			n := escapeLen(b[i:])
			if n == 0 {
				return i, fmt.Sprintf("invalid json: invalid escape at byte %d", i)
			}
			if n < 0 {
				return i, reasonEndOfInput
			}
			i += n
		case c < 0x20:
			return i, fmt.Sprintf("invalid json: control character in string at byte %d", i)
		default:
			i++
		}
	}
	return i, reasonEndOfInput
}

// escapeLen returns the length of the escape sequence at the start of b,
// 0 when it is invalid, -1 when b ends right after the backslash.
func escapeLen(b []byte) int {
	if len(b) < 2 {
		return -1
	}
	switch b[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
		if len(b) >= 6 && isHex4(b[2:6]) {
			return 6
		}
	}
	return 0
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// unexpectedByte says what is wrong at b[i]. It is kept out of line: it
// runs on failure only.
//
//go:noinline
func unexpectedByte(b []byte, i int) string {
	if i >= len(b) {
		return reasonEndOfInput
	}
	return fmt.Sprintf("invalid json: unexpected %q at byte %d", b[i:i+1], i)
}

// isJSONNumber reports whether b is a number in the JSON grammar.
func isJSONNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i == len(b):
		return false
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i)
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return false
		}
		i = j
	}
	return i == len(b)
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// skipWS returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// scanValue returns the end of the JSON value that starts at b[i], finding
// it by structure alone (strings and bracket depth): the value is validated
// later, when it is parsed. ok is false when b ends inside the value.
// It does not recurse, so no nesting depth can exhaust the stack.
func scanValue(b []byte, i int) (end int, ok bool) {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			i = skipString(b, i+1)
			if i >= len(b) {
				return len(b), false
			}
			if depth == 0 {
				return i + 1, true
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i, true // the end of a scalar
			}
			depth--
			if depth == 0 {
				return i + 1, true
			}
		case ',', ' ', '\n', '\r', '\t':
			if depth == 0 {
				return i, true
			}
		}
	}
	return len(b), depth == 0
}

// skipString returns the index of the quote that closes the string whose
// opening quote is just before b[i], or len(b) or more if there is none;
// it only skips escaped quotes, checking nothing.
func skipString(b []byte, i int) int {
	for i < len(b) && b[i] != '"' {
		if b[i] == '\\' {
			i++
		}
		i++
	}
	return i
}

// jsonErrorReason turns a fastjson error into a Reject reason. fastjson
// wraps an error once per nesting level ("cannot parse array: cannot parse
// array value: ..."), which makes 14 KB of text at depth 300: keep the
// innermost error only.
func jsonErrorReason(err error) string {
	msg := strings.TrimPrefix(err.Error(), "cannot parse JSON: ")
	if strings.Contains(msg, "too big depth") {
		return "invalid json: nested deeper than " + strconv.Itoa(fastjson.MaxDepth) + " levels"
	}
	for {
		m := strings.TrimPrefix(msg, "cannot parse array: ")
		m = strings.TrimPrefix(m, "cannot parse array value: ")
		m = strings.TrimPrefix(m, "cannot parse object: ")
		m = strings.TrimPrefix(m, "cannot parse object value: ")
		if m == msg {
			return "invalid json: " + msg
		}
		msg = m
	}
}
