package config_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/recipes/config"
)

// The merge is RFC 7396's JSON merge patch: its test vectors (appendix A)
// whose target and patch are objects.
func TestMergeIsJSONMergePatch(t *testing.T) {
	for _, c := range []struct{ service, override, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`{"e":null}`, `{"a":1}`, `{"a":1,"e":null}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		// And the shape of a real config: an override changes one setting
		// deep inside and drops another.
		{`{"db":{"host":"a","port":5432,"pool":{"max":10,"min":1}},"debug":true}`,
			`{"db":{"host":"b","pool":{"min":null}},"debug":null}`,
			`{"db":{"host":"b","pool":{"max":10},"port":5432}}`},
	} {
		svc, ov := values(t, c.service), values(t, c.override)
		svcCopy, ovCopy := proto.Clone(svc), proto.Clone(ov)
		if got := jsonOf(config.Merge(svc, ov)); got != c.want {
			t.Errorf("Merge(%s, %s) = %s, want %s", c.service, c.override, got, c.want)
		}
		if !proto.Equal(svc, svcCopy) || !proto.Equal(ov, ovCopy) {
			t.Errorf("Merge(%s, %s) modified its arguments", c.service, c.override)
		}
	}
	if got := jsonOf(config.Merge(nil, nil)); got != `{}` {
		t.Errorf("Merge(nil, nil) = %s, want {}", got)
	}
	if got := jsonOf(config.Merge(values(t, `{"a":1}`), nil)); got != `{"a":1}` {
		t.Errorf("Merge({a:1}, nil) = %s", got)
	}
}

func TestParseJSONRejects(t *testing.T) {
	deep := strings.Repeat(`{"a":`, config.MaxDepth+1) + "1" + strings.Repeat("}", config.MaxDepth+1)
	big := `{"a":"` + strings.Repeat("x", config.MaxRecordSize) + `"}`
	for _, c := range []struct {
		name, doc string
		want      error
	}{
		{"malformed", `{"a":`, config.ErrInvalid},
		{"not an object", `[1,2]`, config.ErrInvalid},
		{"a bare string", `"x"`, config.ErrInvalid},
		{"too deep", deep, config.ErrInvalid},
		{"too large", big, cluster.ErrTooLarge},
	} {
		if _, err := config.ParseJSON([]byte(c.doc)); !errors.Is(err, c.want) {
			t.Errorf("ParseJSON(%s) = %v, want %v", c.name, err, c.want)
		}
	}
	ok := strings.Repeat(`{"a":`, config.MaxDepth) + "1" + strings.Repeat("}", config.MaxDepth)
	if _, err := config.ParseJSON([]byte(ok)); err != nil {
		t.Errorf("ParseJSON of %d levels: %v", config.MaxDepth, err)
	}
}

// Values built in Go rather than parsed are validated by the writes; that
// is checked against ZooKeeper in TestInvalidWritesWriteNothing. Here: what
// JSON cannot hold.
func TestValuesJSONCannotHold(t *testing.T) {
	for name, v := range map[string]*structpb.Struct{
		"NaN":      {Fields: map[string]*structpb.Value{"a": structpb.NewNumberValue(math.NaN())}},
		"infinity": {Fields: map[string]*structpb.Value{"a": structpb.NewNumberValue(math.Inf(1))}},
		"no kind":  {Fields: map[string]*structpb.Value{"a": {}}},
		"in list":  {Fields: map[string]*structpb.Value{"a": structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{{}}})}},
		"bad utf8": {Fields: map[string]*structpb.Value{"a": structpb.NewStringValue("\xff")}},
	} {
		if err := config.Validate(v); !errors.Is(err, config.ErrInvalid) {
			t.Errorf("%s: Validate = %v, want ErrInvalid", name, err)
		}
	}
}

// Data in a config znode may come from anyone: decoding never panics, and
// what it cannot use it reports.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"a":1}`))
	f.Add([]byte{0x0a, 0x05, 0x0a, 0x03, 0x0a, 0x01, 0x61})
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Add([]byte(strings.Repeat("\x0a\x02", 200)))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := config.Decode(data)
		if err == nil && config.Validate(rec.GetValues()) != nil {
			t.Errorf("Decode accepted values Validate refuses")
		}
	})
}
