//! The JavaScript-compatible body serialisation: the one place that decides
//! which bytes an event body is.
//!
//! Receivers written against the seeds verify the HMAC over
//! `JSON.stringify(req.body)`, i.e. over what JavaScript prints after parsing
//! our request. So Herald must *send* exactly those bytes, or every signature
//! fails at a receiver that did nothing wrong. At publish time the payload goes
//! through [`canonicalize`] (or [`parse`], an edit, then [`to_js_string`]) and
//! the result is stored; every attempt sends the stored bytes unchanged.
//!
//! What JavaScript does, and so what this module reproduces:
//! - objects list "array index" keys first in ascending numeric order, then
//!   every other key in insertion order; a repeated key keeps its first
//!   position and its last value (serde_json's `preserve_order` map does the
//!   latter already);
//! - every number becomes an IEEE double (correctly rounded) and is printed by
//!   `Number.prototype.toString` (ryu-js); infinities print as `null` and `-0`
//!   as `0`; `arbitrary_precision` keeps the source text so nothing is rounded
//!   twice on the way;
//! - strings escape only `"`, `\` and control characters below U+0020;
//!   everything else, `/` and U+2028 included, is written as UTF-8.
//!
//! Known limitations, where we reject input JavaScript would accept:
//! - lone surrogate escapes such as `"\ud800"` cannot live in a Rust `String`,
//!   so serde_json refuses them;
//! - nesting deeper than serde_json's recursion limit (128) is refused;
//! - bytes that are not UTF-8 are refused (JavaScript would see U+FFFD).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The object key serde_json's `arbitrary_precision` uses to smuggle a number
/// through serde as a one-entry map; see [`parse`].
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// Array indices stop one short of `u32::MAX` (ECMA-262 "array index").
const MAX_ARRAY_INDEX: u32 = u32::MAX - 1;

/// Serialises a parsed JSON value exactly as JavaScript's JSON.stringify would.
pub fn to_js_string(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// Parses bytes as JSON and returns JSON.stringify(JSON.parse(bytes)).
pub fn canonicalize(input: &[u8]) -> Result<String, serde_json::Error> {
    parse(input).map(|value| to_js_string(&value))
}

/// Parses bytes as JSON into the value JSON.parse would build.
///
/// Use this instead of `serde_json::from_slice` for payloads: with
/// `arbitrary_precision`, serde_json's own `Value` reads an object whose first
/// key is `"$serde_json::private::Number"` as a number (or fails), whereas
/// JavaScript sees an ordinary object.
pub fn parse(input: &[u8]) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(input);
    let value = JsValue.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => write_array(out, items),
        Value::Object(map) => write_object(out, map),
    }
}

fn write_number(out: &mut String, n: &Number) {
    // The source text, not serde_json's own f64 or u64 view: a u64 such as
    // 12345678901234567890 must round to the nearest double as JS does.
    match n.as_str().parse::<f64>() {
        // ryu-js prints -0 as "0", as Number.prototype.toString does.
        Ok(f) if f.is_finite() => out.push_str(ryu_js::Buffer::new().format_finite(f)),
        // JSON.stringify writes non-finite numbers (1e400) as null. The parse
        // cannot fail on JSON number text; null is the safe answer if it did.
        _ => out.push_str("null"),
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    // Every byte that needs escaping is ASCII, so the runs between them are
    // whole UTF-8 sequences and can be copied as they are.
    let mut run_start = 0;
    for (i, byte) in s.bytes().enumerate() {
        if let Some(escape) = short_escape(byte) {
            out.push_str(&s[run_start..i]);
            out.push_str(escape);
        } else if byte < 0x20 {
            out.push_str(&s[run_start..i]);
            push_unicode_escape(out, byte);
        } else {
            continue;
        }
        run_start = i + 1;
    }
    out.push_str(&s[run_start..]);
    out.push('"');
}

fn short_escape(byte: u8) -> Option<&'static str> {
    match byte {
        b'"' => Some("\\\""),
        b'\\' => Some("\\\\"),
        0x08 => Some("\\b"),
        0x0c => Some("\\f"),
        b'\n' => Some("\\n"),
        b'\r' => Some("\\r"),
        b'\t' => Some("\\t"),
        _ => None,
    }
}

/// `\u00XX` with lowercase hex, as JSON.stringify spells other controls.
fn push_unicode_escape(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\u00");
    out.push(char::from(HEX[usize::from(byte >> 4)]));
    out.push(char::from(HEX[usize::from(byte & 0x0f)]));
}

fn write_array(out: &mut String, items: &[Value]) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_value(out, item);
    }
    out.push(']');
}

fn write_object(out: &mut String, map: &Map<String, Value>) {
    out.push('{');
    for (i, (key, value)) in js_key_order(map).into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_value(out, value);
    }
    out.push('}');
}

/// The order of ECMA-262 OrdinaryOwnPropertyKeys, which JSON.stringify walks.
fn js_key_order(map: &Map<String, Value>) -> Vec<(&str, &Value)> {
    let mut indexed = Vec::new();
    let mut named = Vec::new();
    for (key, value) in map {
        match array_index(key) {
            Some(index) => indexed.push((index, key.as_str(), value)),
            None => named.push((key.as_str(), value)),
        }
    }
    // Keys are unique, so the indices are too and an unstable sort is exact.
    indexed.sort_unstable_by_key(|&(index, _, _)| index);
    indexed
        .into_iter()
        .map(|(_, key, value)| (key, value))
        .chain(named)
        .collect()
}

/// The key's numeric value if it is the canonical decimal spelling of an
/// integer in `0..=4294967294`; "01", "+1", "-1", "1.0" and " 1" are not.
fn array_index(key: &str) -> Option<u32> {
    let canonical = match key.as_bytes() {
        [b'0'] => true,
        [first, rest @ ..] => (b'1'..=b'9').contains(first) && rest.iter().all(u8::is_ascii_digit),
        [] => false,
    };
    if !canonical {
        return None;
    }
    // Too many digits for a u32 fails here, which is also "not an index".
    key.parse::<u32>().ok().filter(|&n| n <= MAX_ARRAY_INDEX)
}

/// Builds a `Value` the way JSON.parse builds its object graph; see [`parse`].
struct JsValue;

impl<'de> DeserializeSeed<'de> for JsValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JsValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(JsValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Some(first_key) = map.next_key::<String>()? else {
            return Ok(Value::Object(Map::new()));
        };
        let first_value = if first_key == NUMBER_TOKEN {
            match map.next_value_seed(NumberProbe)? {
                Probe::Number(text) => return number_from_text::<A::Error>(&text),
                Probe::Value(value) => value,
            }
        } else {
            map.next_value_seed(JsValue)?
        };
        let mut object = Map::new();
        object.insert(first_key, first_value);
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(JsValue)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

fn number_from_text<E: de::Error>(text: &str) -> Result<Value, E> {
    text.parse::<Number>().map(Value::Number).map_err(E::custom)
}

/// What followed a `NUMBER_TOKEN` key: serde_json's number smuggling hands
/// over the number text as an owned `String` (`visit_string`), while a JSON
/// string in the input always arrives borrowed or as `&str`. Anything else is
/// an ordinary value of an ordinary object. A unit test pins this behaviour.
enum Probe {
    Number(String),
    Value(Value),
}

struct NumberProbe;

impl<'de> DeserializeSeed<'de> for NumberProbe {
    type Value = Probe;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Probe, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NumberProbe {
    type Value = Probe;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Probe, E> {
        Ok(Probe::Number(s))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Probe, E> {
        JsValue.visit_str(s).map(Probe::Value)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Probe, E> {
        JsValue.visit_bool(b).map(Probe::Value)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Probe, E> {
        JsValue.visit_i64(n).map(Probe::Value)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Probe, E> {
        JsValue.visit_u64(n).map(Probe::Value)
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Probe, E> {
        JsValue.visit_f64(n).map(Probe::Value)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Probe, E> {
        JsValue.visit_unit().map(Probe::Value)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Probe, A::Error> {
        JsValue.visit_seq(seq).map(Probe::Value)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Probe, A::Error> {
        JsValue.visit_map(map).map(Probe::Value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(input: &str) -> String {
        canonicalize(input.as_bytes()).unwrap_or_else(|e| panic!("{input:?} failed: {e}"))
    }

    #[test]
    fn array_index_keys_come_first_in_numeric_order() {
        let input = r#"{"b":1,"10":2,"a":3,"2":4,"0":5,"x":6}"#;
        assert_eq!(canon(input), r#"{"0":5,"2":4,"10":2,"b":1,"a":3,"x":6}"#);
    }

    #[test]
    fn only_canonical_u32_spellings_below_max_are_array_indices() {
        let yes = [
            ("0", 0),
            ("7", 7),
            ("123", 123),
            ("4294967294", 4_294_967_294),
        ];
        for (key, n) in yes {
            assert_eq!(array_index(key), Some(n), "{key:?}");
        }
        let no = [
            "",
            "01",
            "00",
            "-1",
            "-0",
            "+1",
            "1.0",
            "1e3",
            " 1",
            "1 ",
            "4294967295",
            "4294967296",
            "99999999999999999999",
            "١",
            "0x1",
            "a1",
        ];
        for key in no {
            assert_eq!(array_index(key), None, "{key:?}");
        }
    }

    #[test]
    fn non_index_numeric_looking_keys_keep_insertion_order() {
        let input = r#"{"4294967295":1,"01":2,"4294967294":3,"-1":4,"1.5":5,"1":6}"#;
        let expected = r#"{"1":6,"4294967294":3,"4294967295":1,"01":2,"-1":4,"1.5":5}"#;
        assert_eq!(canon(input), expected);
    }

    #[test]
    fn duplicate_key_keeps_first_position_and_last_value() {
        assert_eq!(canon(r#"{"a":1,"b":2,"a":3}"#), r#"{"a":3,"b":2}"#);
        assert_eq!(canon(r#"{"5":1,"b":2,"5":3}"#), r#"{"5":3,"b":2}"#);
    }

    #[test]
    fn numbers_are_spelled_like_number_to_string() {
        let cases = [
            ("1.0", "1"),
            ("100", "100"),
            ("1E2", "100"),
            ("1e+2", "100"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("1e-7", "1e-7"),
            ("0.000001", "0.000001"),
            ("123e-20", "1.23e-18"),
            ("12345678901234567890", "12345678901234567000"),
            ("9007199254740993", "9007199254740992"),
            ("5e-324", "5e-324"),
            ("2.5e-324", "5e-324"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("0.1", "0.1"),
            ("0.30000000000000004", "0.30000000000000004"),
            ("-1.5", "-1.5"),
            ("123456789012345680000", "123456789012345680000"),
            ("1.00000000000000000000000000001", "1"),
        ];
        for (input, expected) in cases {
            assert_eq!(canon(input), expected, "{input}");
        }
    }

    #[test]
    fn negative_zero_prints_as_zero() {
        for input in ["-0", "-0.0", "-0e10", "-1e-400", "0.0"] {
            assert_eq!(canon(input), "0", "{input}");
        }
    }

    #[test]
    fn non_finite_numbers_become_null() {
        assert_eq!(
            canon("[1e400,-1e400,1e99999999999999999999]"),
            "[null,null,null]"
        );
        assert_eq!(canon("1e-400"), "0");
        assert_eq!(canon("1e-99999999999999999999"), "0");
    }

    #[test]
    fn escapes_match_json_stringify() {
        let cases = [
            (r#""q\"b\\s/""#, r#""q\"b\\s/""#),
            (r#""\b\f\n\r\t""#, r#""\b\f\n\r\t""#),
            (
                r#""\u0000\u0001\u001f\u001F""#,
                r#""\u0000\u0001\u001f\u001f""#,
            ),
            (r#""\u0020\u007f\/""#, "\" \u{7f}/\""),
            (r#""\u2028\u2029""#, "\"\u{2028}\u{2029}\""),
            (r#""\u00e9\ud83d\ude00""#, "\"é😀\""),
            ("\"é😀ü\"", "\"é😀ü\""),
        ];
        for (input, expected) in cases {
            assert_eq!(canon(input), expected, "{input}");
        }
    }

    #[test]
    fn string_escaping_agrees_with_serde_json_for_every_ascii_char() {
        for c in (0u8..0x80).map(char::from).chain(['\u{2028}', 'é', '😀']) {
            let s = format!("a{c}b{c}");
            let mut ours = String::new();
            write_string(&mut ours, &s);
            assert_eq!(ours, serde_json::to_string(&s).expect("string"), "{c:?}");
        }
    }

    #[test]
    fn whitespace_goes_and_structure_stays() {
        let input = " {\n\t\"a\" : [ 1 , { } , [ ] , true , false , null ] ,\r\n \"b\" : { \"c\" : \"d\" } } ";
        assert_eq!(
            canon(input),
            r#"{"a":[1,{},[],true,false,null],"b":{"c":"d"}}"#
        );
    }

    #[test]
    fn scalars_and_empty_containers_stand_alone() {
        for (input, expected) in [
            ("{}", "{}"),
            ("[]", "[]"),
            ("true", "true"),
            ("null", "null"),
        ] {
            assert_eq!(canon(input), expected);
        }
        assert_eq!(canon(r#""""#), r#""""#);
    }

    #[test]
    fn nested_objects_are_ordered_at_every_level() {
        let input = r#"{"z":{"b":1,"1":2},"3":[{"y":1,"0":2}]}"#;
        assert_eq!(canon(input), r#"{"3":[{"0":2,"y":1}],"z":{"1":2,"b":1}}"#);
    }

    #[test]
    fn invalid_json_is_an_error() {
        let bad: [&[u8]; 9] = [
            b"",
            b"{",
            b"[1,]",
            b"{\"a\":1,}",
            b"01",
            b"1 2",
            b"NaN",
            b"\"\xff\"",
            b"'a'",
        ];
        for input in bad {
            assert!(canonicalize(input).is_err(), "{input:?}");
        }
    }

    #[test]
    fn lone_surrogates_are_a_known_limitation() {
        // JavaScript would answer "\ud800"; we refuse rather than guess.
        for input in [r#""\ud800""#, r#""\udc00x""#, r#"{"\ud83d":1}"#] {
            assert!(canonicalize(input.as_bytes()).is_err(), "{input}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(canonicalize(deep.as_bytes()).is_err());
        let deep = "{\"a\":".repeat(100_000);
        assert!(canonicalize(deep.as_bytes()).is_err());
        let fine = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(canon(&fine), fine);
    }

    #[test]
    fn serde_json_number_token_is_an_ordinary_key() {
        // serde_json's own Value turns this object into the number 1; the
        // probe relies on how serde_json hands over number text, so this
        // test fails loudly if a serde_json upgrade changes that.
        let cases = [
            r#"{"$serde_json::private::Number":"1"}"#,
            r#"{"$serde_json::private::Number":"abc"}"#,
            r#"{"$serde_json::private::Number":1}"#,
            r#"{"$serde_json::private::Number":"1","a":2}"#,
            r#"{"$serde_json::private::Number":{"$serde_json::private::Number":"2"}}"#,
            r#"{"$serde_json::private::Number":[null,true,"x\n"]}"#,
            r#"{"a":1,"$serde_json::private::Number":"1"}"#,
        ];
        for input in cases {
            assert_eq!(canon(input), input);
        }
        let escaped = r#"{"\u0024serde_json::private::Number":"2"}"#;
        assert_eq!(canon(escaped), r#"{"$serde_json::private::Number":"2"}"#);
    }

    #[test]
    fn to_js_string_orders_and_formats_built_values() {
        let value = json!({"b": 1.0, "10": -0.0, "a": [0.1, 1e21, "x"], "2": null});
        assert_eq!(
            to_js_string(&value),
            r#"{"2":null,"10":0,"b":1,"a":[0.1,1e+21,"x"]}"#
        );
        assert_eq!(to_js_string(&json!(u64::MAX)), "18446744073709552000");
        assert_eq!(to_js_string(&json!(i64::MIN)), "-9223372036854776000");
    }

    #[test]
    fn canonical_output_is_a_fixed_point() {
        let input = r#"{"b":[1.50,"\u00e9"],"1":{"z":1e21,"0":-0}}"#;
        let once = canon(input);
        assert_eq!(canon(&once), once);
    }

    /// Runs `JSON.stringify(JSON.parse(s))` in real Node.js for each input;
    /// `None` where JSON.parse throws.
    fn node_stringify(inputs: &[String]) -> Vec<Option<String>> {
        use std::io::Write;
        use std::process::{Command, Stdio};
        const SCRIPT: &str = "let s='';process.stdin.setEncoding('utf8');\
            process.stdin.on('data',d=>s+=d).on('end',()=>{\
            const out=JSON.parse(s).map(x=>{try{return JSON.stringify(JSON.parse(x))}\
            catch(e){return null}});process.stdout.write(JSON.stringify(out))})";
        let mut child = Command::new("node")
            .args(["-e", SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run `node` ({e}): these tests compare with real JavaScript, install Node.js")
            });
        let corpus = serde_json::to_vec(inputs).expect("corpus");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&corpus).expect("write to node");
        drop(stdin);
        let output = child.wait_with_output().expect("node output");
        assert!(output.status.success(), "node failed: {:?}", output.status);
        serde_json::from_slice(&output.stdout).expect("node printed JSON")
    }

    fn assert_matches_node(inputs: &[String]) {
        let expected = node_stringify(inputs);
        assert_eq!(expected.len(), inputs.len());
        for (input, expected) in inputs.iter().zip(expected) {
            let ours = canonicalize(input.as_bytes()).ok();
            assert_eq!(ours, expected, "input: {input}");
        }
    }

    #[test]
    fn matches_node_on_awkward_payloads() {
        let corpus = [
            r#"{"b":1,"4294967295":2,"4294967294":3,"1":4,"01":5,"-1":6,"0":7}"#,
            r#"{"9007199254740993":1,"1.0":2," 1":3,"1 ":4,"+1":5,"":6,"10":7,"9":8}"#,
            r#"{"a":1,"b":2,"a":3,"2":4,"2":5}"#,
            r#"{"__proto__":{"x":1},"constructor":2,"toString":3}"#,
            r#"{"$serde_json::private::Number":"1"}"#,
            r#"{"$serde_json::private::Number":"1","b":[2]}"#,
            r#"[1.0,1E2,1e+2,1e21,1e20,1e-7,1e-6,0.000001,123e-20,-0,-0.0,0e5]"#,
            r#"[12345678901234567890,9007199254740993,18446744073709551615,-9223372036854775809]"#,
            r#"[5e-324,2.4e-324,2.5e-324,1e-400,-1e-400,1.7976931348623157e308,1.7976931348623158e308]"#,
            r#"[1e400,-1e400,1e99999999999999999999,0.1,0.2,0.30000000000000004,1.5e300]"#,
            r#"[123456789012345678901234567890,0.000000123456789,1.23456789e-9,4.35,2.675]"#,
            r#"[1.00000000000000011102230246251565404236316680908203125,1.0000000000000002]"#,
            r#"[9.999999999999999e22,1e23,8.41e21,5e-7,1.7976931348623157e-308]"#,
            r#""q\"b\\s\/\b\f\n\r\t\u0000\u0001\u001f\u001F\u007f\u0080\u00ff""#,
            r#""\u2028\u2029\ud83d\ude00\uFEFF\uFFFF\u200b é 中文 😀 👍🏽""#,
            "\"raw é 中文 😀 \u{7f} \u{2028}\"",
            r#"{"nested":{"3":[{"b":null,"0":true}],"a":{"1":{"z":false,"2":[]}}},"0":{}}"#,
            r#"  {  "event" : "job.completed" ,"data":{"url":"https://cdn.example.com/i.png","credits_charged":6}}  "#,
            r#"[[[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]]"#,
            r#"{"a":1,}"#,
            r#"01"#,
            "\u{feff}{}",
            "{}\n",
            "null",
            "\"\"",
        ];
        let corpus: Vec<String> = corpus.iter().map(|s| s.to_string()).collect();
        assert_matches_node(&corpus);
    }

    #[test]
    fn matches_node_on_random_numbers() {
        use rand::{rngs::StdRng, Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(20_261_101);
        let mut numbers = Vec::new();
        for _ in 0..3000 {
            let f = f64::from_bits(rng.random::<u64>());
            if f.is_finite() {
                numbers.push(format!("{f:e}"));
            }
            let digits: String = (0..rng.random_range(1..=25))
                .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
                .collect();
            let exponent = rng.random_range(-340..=320);
            numbers.push(format!("0.{digits}e{exponent}"));
            numbers.push(rng.random::<u64>().to_string());
            numbers.push(format!("{}", rng.random_range(-1e6..1e6_f64)));
        }
        let batches: Vec<String> = numbers
            .chunks(500)
            .map(|c| format!("[{}]", c.join(",")))
            .collect();
        assert_matches_node(&batches);
    }
}
