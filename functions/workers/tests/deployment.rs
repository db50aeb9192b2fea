//! The renewer as template.yaml deploys it (the SAM-transformed template): its timeout leaves
//! it time to take work before its deadline margin, and the alarm on certificates about to
//! expire watches the metric the renewer publishes, under the same namespace and dimension.

use edgecert_integration::template::sam_transformed;
use edgecert_workers::renewer::{
    DEADLINE_MARGIN, EXPIRING_METRIC, METRICS_NAMESPACE, TABLE_DIMENSION,
};
use serde_json::{Value, json};

fn resource(name: &str) -> &'static Value {
    let template = sam_transformed().unwrap_or_else(|error| panic!("{error:#}"));
    let resource = &template["Resources"][name];
    assert!(resource.is_object(), "template.yaml has no {name}");
    resource
}

#[test]
fn the_renewer_has_time_to_take_work_before_its_deadline_margin() {
    let timeout = resource("RenewerFunction")["Properties"]["Timeout"]
        .as_u64()
        .expect("the renewer has a timeout");
    assert!(
        timeout >= 2 * DEADLINE_MARGIN.as_secs(),
        "the renewer's timeout ({timeout} s) leaves less time to take work than the {} s it \
         keeps for finishing",
        DEADLINE_MARGIN.as_secs()
    );
}

#[test]
fn the_expiry_alarm_watches_the_metric_the_renewer_publishes() {
    let alarm = &resource("CertificatesExpiringAlarm")["Properties"];
    assert_eq!(alarm["Namespace"], METRICS_NAMESPACE);
    assert_eq!(alarm["MetricName"], EXPIRING_METRIC);
    assert_eq!(
        alarm["Dimensions"],
        json!([{ "Name": TABLE_DIMENSION, "Value": { "Ref": "Table" } }])
    );
    // The renewer names the dimension's value from its table variable: the same table.
    let variables = &resource("RenewerFunction")["Properties"]["Environment"]["Variables"];
    assert_eq!(variables["EDGECERT_TABLE_NAME"], json!({ "Ref": "Table" }));
}
