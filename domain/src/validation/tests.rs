//! The wire rules, given / when / then: every violation reported, nothing refused that the sample sent.

use super::*;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-21T12:00:00Z").unwrap().with_timezone(&Utc)
}

fn violations(body: &str) -> Vec<(String, String)> {
    match parse_create(body.as_bytes(), now()) {
        Err(InputError::Invalid(v)) => v.0.into_iter().map(|v| (v.field, v.reason)).collect(),
        other => panic!("expected violations for {body}, got {other:?}"),
    }
}

fn fields(body: &str) -> Vec<String> {
    violations(body).into_iter().map(|(f, _)| f).collect()
}

#[test]
fn given_the_samples_request_shape_when_parsed_then_it_is_accepted_as_is() {
    let draft = parse_create(
        br#"{"orderId":"6119","items":[{"itemid":"z3333","quantity":6},{"itemid":"z4444","quantity":3}]}"#,
        now(),
    )
    .unwrap();
    assert_eq!(draft.order_id.as_str(), "6119");
    assert_eq!(draft.lines.as_slice().len(), 2);
    assert_eq!(draft.lines.as_slice()[0].quantity.get(), 6);
    assert_eq!(draft.order_date, None);
}

#[test]
fn given_prices_and_a_date_when_parsed_then_they_are_exact_and_utc() {
    let draft = parse_create(
        br#"{"orderId":"a","orderDate":"2022-10-13T23:30:00-02:00","items":[
            {"itemid":"x","quantity":1,"unitPrice":19.99},
            {"itemid":"y","quantity":1,"unitPrice":"0.1000"},
            {"itemid":"z","quantity":1,"unitPrice":12345678901234.5678}]}"#,
        now(),
    )
    .unwrap();
    let prices: Vec<String> = draft.lines.as_slice().iter().map(|l| l.unit_price.unwrap().get().to_string()).collect();
    assert_eq!(prices, ["19.99", "0.1", "12345678901234.5678"], "18 digits: more than a float holds");
    assert_eq!(crate::order::format_time(&draft.order_date.unwrap()), "2022-10-14T01:30:00.000Z");
}

#[test]
fn a_date_without_time_is_midnight_utc() {
    let draft =
        parse_create(br#"{"orderId":"a","orderDate":"2022-10-13","items":[{"itemid":"x","quantity":1}]}"#, now())
            .unwrap();
    assert_eq!(crate::order::format_time(&draft.order_date.unwrap()), "2022-10-13T00:00:00.000Z");
}

#[test]
fn given_bad_quantities_when_parsed_then_each_is_reported_with_its_path() {
    let v = violations(
        r#"{"orderId":"a","items":[
            {"itemid":"q0","quantity":0},
            {"itemid":"q1","quantity":-1},
            {"itemid":"q2","quantity":1.5},
            {"itemid":"q3","quantity":"6"},
            {"itemid":"q4"},
            {"itemid":"q5","quantity":1000001},
            {"itemid":"q6","quantity":6.0},
            {"itemid":"q7","quantity":1e3},
            {"itemid":"q8","quantity":true},
            {"itemid":"q9","quantity":99999999999999999999999}]}"#,
    );
    let fields: Vec<&str> = v.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        (0..10)
            .map(|i| format!("items[{i}].quantity"))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    assert!(v[0].1.contains("between 1 and 1000000"));
    assert!(v[2].1.contains("whole number"));
    assert!(v[3].1.contains("not a string"));
    assert_eq!(v[4].1, "is required");
}

#[test]
fn given_many_problems_when_parsed_then_all_are_reported_not_just_the_first() {
    let f = fields(
        r#"{"orderId":"has space","extra":1,"orderDate":"2026-11-23T12:00:01Z","items":[
            {"itemid":"","quantity":1},
            {"itemid":"dup","quantity":1,"unitPrice":-1},
            {"itemid":"dup","quantity":1,"unitPrice":"1.00001"},
            {"itemid":"ok","quantity":1,"colour":"red"},
            7]}"#,
    );
    assert_eq!(
        f,
        [
            "extra",
            "orderId",
            "items[0].itemid",
            "items[1].unitPrice",
            "items[2].unitPrice",
            "items[2].itemid",
            "items[3].colour",
            "items[4]",
            "orderDate"
        ]
    );
}

#[test]
fn order_id_and_item_rules() {
    assert_eq!(fields(r#"{"items":[{"itemid":"a","quantity":1}]}"#), ["orderId"]);
    assert_eq!(fields(r#"{"orderId":6119,"items":[{"itemid":"a","quantity":1}]}"#), ["orderId"]);
    let long = "x".repeat(65);
    assert_eq!(
        fields(&format!(r#"{{"orderId":"{long}","items":[{{"itemid":"{long}","quantity":1}}]}}"#)),
        ["orderId", "items[0].itemid"]
    );
    assert_eq!(fields(r#"{"orderId":"a","items":[]}"#), ["items"]);
    assert_eq!(fields(r#"{"orderId":"a","items":{}}"#), ["items"]);
    assert_eq!(fields(r#"{"orderId":"a"}"#), ["items"]);
    let hundred_one: Vec<String> = (0..101).map(|i| format!(r#"{{"itemid":"i{i}","quantity":1}}"#)).collect();
    assert_eq!(fields(&format!(r#"{{"orderId":"a","items":[{}]}}"#, hundred_one.join(","))), ["items"]);
    let hundred: Vec<String> = (0..100).map(|i| format!(r#"{{"itemid":"i{i}","quantity":1}}"#)).collect();
    assert!(parse_create(format!(r#"{{"orderId":"a","items":[{}]}}"#, hundred.join(",")).as_bytes(), now()).is_ok());
}

#[test]
fn duplicate_members_are_refused_not_merged() {
    assert_eq!(fields(r#"{"orderId":"a","orderId":"b","items":[{"itemid":"a","quantity":1}]}"#), ["orderId"]);
}

#[test]
fn order_date_may_be_up_to_one_day_ahead() {
    assert!(
        parse_create(
            br#"{"orderId":"a","orderDate":"2026-11-22T12:00:00Z","items":[{"itemid":"a","quantity":1}]}"#,
            now()
        )
        .is_ok()
    );
    assert_eq!(
        fields(r#"{"orderId":"a","orderDate":"2026-11-22T12:00:00.001Z","items":[{"itemid":"a","quantity":1}]}"#),
        ["orderDate"]
    );
    assert_eq!(
        fields(r#"{"orderId":"a","orderDate":"yesterday","items":[{"itemid":"a","quantity":1}]}"#),
        ["orderDate"]
    );
}

#[test]
fn given_a_leap_second_then_it_is_the_last_millisecond_of_its_minute_in_the_month_it_was_written() {
    let draft = parse_create(
        br#"{"orderId":"a","orderDate":"2016-12-31T23:59:60Z","items":[{"itemid":"a","quantity":1}]}"#,
        now(),
    )
    .unwrap();
    let at = draft.order_date.unwrap();
    assert_eq!(crate::order::format_time(&at), "2016-12-31T23:59:59.999Z");
    assert_eq!(crate::projection::SaleMonth::of(at).as_str(), "2016-12");
    let offset = parse_create(
        br#"{"orderId":"a","orderDate":"2017-01-01T04:59:60.5+05:00","items":[{"itemid":"a","quantity":1}]}"#,
        now(),
    )
    .unwrap();
    assert_eq!(offset.order_date, Some(at), "a leap second written in another offset is the same instant");
    assert_eq!(crate::order::parse_time("2016-12-31T23:59:60.250Z"), Some(at), "stored text reads the same");
}

#[test]
fn given_an_order_date_before_1900_then_it_is_refused_naming_the_earliest() {
    let old =
        violations(r#"{"orderId":"a","orderDate":"1899-12-31T23:59:59.999Z","items":[{"itemid":"a","quantity":1}]}"#);
    assert_eq!(old, [("orderDate".to_owned(), "must not be before 1900-01-01T00:00:00Z".to_owned())]);
    for early in ["0000-01-01", "0999-12-31T00:00:00Z", "1000-01-01"] {
        let body = format!(r#"{{"orderId":"a","orderDate":"{early}","items":[{{"itemid":"a","quantity":1}}]}}"#);
        assert_eq!(fields(&body), ["orderDate"], "{early}");
    }
    assert!(
        parse_create(br#"{"orderId":"a","orderDate":"1900-01-01","items":[{"itemid":"a","quantity":1}]}"#, now())
            .is_ok()
    );
}

#[test]
fn given_lone_surrogates_anywhere_then_each_is_a_violation_not_a_panic() {
    let cases = [
        (r#"{"orderId":"\ud800","items":[{"itemid":"a","quantity":1}]}"#, "orderId"),
        (r#"{"orderId":"a","orderDate":"\udfff","items":[{"itemid":"a","quantity":1}]}"#, "orderDate"),
        (r#"{"orderId":"a","items":[{"itemid":"\ud800x","quantity":1}]}"#, "items[0].itemid"),
        (r#"{"orderId":"a","items":[{"itemid":"a","quantity":1,"unitPrice":"\ud83d"}]}"#, "items[0].unitPrice"),
        (r#"{"orderId":"a","items":[{"\ud800":1,"itemid":"a","quantity":1}]}"#, "items[0]"),
        (r#"{"\ud800":1,"orderId":"a","items":[{"itemid":"a","quantity":1}]}"#, ""),
    ];
    for (body, field) in cases {
        assert_eq!(fields(body), [field], "{body}");
    }
    let id = OrderId::parse("6119").unwrap();
    let err = parse_amendment(br#"{"orderId":"\ud800","items":[{"itemid":"a","quantity":1}]}"#, &id).unwrap_err();
    assert!(matches!(err, InputError::Invalid(v) if v.0[0].field == "orderId"));
}

#[test]
fn malformed_json_and_non_objects_are_different_errors() {
    assert!(matches!(parse_create(b"{not json", now()), Err(InputError::Malformed(_))));
    assert!(matches!(parse_create(b"", now()), Err(InputError::Malformed(_))));
    assert!(matches!(parse_create(&[0xff, 0xfe], now()), Err(InputError::Malformed(_))));
    assert_eq!(fields("[1,2]"), [""]);
    assert_eq!(fields("null"), [""]);
}

#[test]
fn an_amendment_takes_items_and_an_optional_version() {
    let id = OrderId::parse("6119").unwrap();
    let a = parse_amendment(br#"{"items":[{"itemid":"a","quantity":2}],"version":3}"#, &id).unwrap();
    assert_eq!(a.version, Version::new(3));
    let a = parse_amendment(br#"{"orderId":"6119","items":[{"itemid":"a","quantity":2}]}"#, &id).unwrap();
    assert_eq!(a.version, None);
    let err = parse_amendment(br#"{"orderId":"other","items":[],"version":0}"#, &id).unwrap_err();
    let InputError::Invalid(v) = err else { panic!() };
    let f: Vec<_> = v.0.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(f, ["orderId", "items", "version"]);
}
