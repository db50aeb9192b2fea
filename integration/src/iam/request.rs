//! What an AWS API request asks IAM for: the action and resource ARN of every authorization the
//! request needs, read from the request as it goes over the wire.
//!
//! The service is the one the SigV4 signature names in its credential scope (one endpoint serves
//! every service, as moto does). Then, by protocol:
//!
//! - JSON (`X-Amz-Target: DynamoDB_20120810.GetItem`, `secretsmanager.GetSecretValue`,
//!   `TrentService.Decrypt`): the operation is the target's, the resource comes from the body
//!   (`TableName`, `SecretId`, KMS's `KeyId`; a KMS request without one is named by the key
//!   ARN its answer gives, see [`kms_key_arn_in_response`]). A
//!   DynamoDB transaction is authorized item by item, as IAM does it: `TransactWriteItems` needs
//!   `PutItem`, `UpdateItem`, `DeleteItem` or `ConditionCheckItem` on each item's table (there
//!   is no `dynamodb:TransactWriteItems` action), so it yields one authorization per item.
//! - REST (Route 53): the operation from the method and the path.
//! - Query (STS): the `Action` form field.
//!
//! A request whose IAM action cannot be named yields an authorization without one, which the
//! policy check refuses rather than guesses.

use std::collections::BTreeMap;

use serde_json::Value;

/// The partition of every ARN built here (moto and the tests are `aws`).
const PARTITION: &str = "aws";

/// What the SigV4 `Authorization` header says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The access key that signed it: the function's own, or one an `AssumeRole` returned.
    pub access_key_id: String,
    /// The region of the credential scope.
    pub region: String,
    /// The signing name of the service (`dynamodb`, `secretsmanager`, `route53`, `sts`).
    pub service: String,
}

impl Signature {
    /// Reads `AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request, ...`.
    pub fn read(authorization: &str) -> Option<Signature> {
        let credential = authorization
            .split([' ', ','])
            .find_map(|part| part.trim().strip_prefix("Credential="))?;
        let mut scope = credential.split('/');
        let access_key_id = scope.next()?.to_owned();
        let _date = scope.next()?;
        let region = scope.next()?.to_owned();
        let service = scope.next()?.to_owned();
        Some(Signature {
            access_key_id,
            region,
            service,
        })
    }
}

/// One authorization a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// `service:Operation` as IAM names it; `None` when the request does not say.
    pub action: Option<String>,
    /// The resource's ARN, or `*` for actions on no particular resource.
    pub resource: String,
    /// What was sent, for messages: `TransactWriteItems`, `GET /2013-04-01/change/C1`.
    pub operation: String,
    /// For DynamoDB: the key attributes each touched item is named by (`PK` -> `ACCT#...`);
    /// for a query, the attributes its key condition sets equal. `None` when the request names
    /// no items (or names them in a way not read here): condition keys derived from them are
    /// then unknown.
    pub dynamodb_keys: Option<Vec<BTreeMap<String, String>>>,
}

/// A request as the recorder received it.
#[derive(Debug, Clone, Copy)]
pub struct AwsRequest<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Path, without the query.
    pub path: &'a str,
    /// Query string, without `?`.
    pub query: Option<&'a str>,
    /// `X-Amz-Target`, for JSON protocols.
    pub target: Option<&'a str>,
    /// The signature, if the request is signed.
    pub signature: Option<&'a Signature>,
    /// The body.
    pub body: &'a [u8],
}

/// The IAM service prefix of a SigV4 signing name (they differ for a few services).
fn iam_prefix(signing_name: &str) -> &str {
    match signing_name {
        "monitoring" => "cloudwatch",
        "email" => "ses",
        other => other,
    }
}

/// Every authorization `request` needs, in the account `account_id`.
pub fn authorizations(request: &AwsRequest<'_>, account_id: &str) -> Vec<Authorization> {
    let region = request
        .signature
        .map_or("us-east-1", |signature| signature.region.as_str());
    let service = request
        .signature
        .map(|signature| iam_prefix(&signature.service).to_owned())
        .or_else(|| {
            // Unsigned requests: the JSON target names the service too.
            let prefix = request.target?.split('.').next()?;
            match prefix {
                "DynamoDB_20120810" => Some("dynamodb".to_owned()),
                "secretsmanager" => Some("secretsmanager".to_owned()),
                "TrentService" => Some("kms".to_owned()),
                _ => None,
            }
        });
    let arns = Arns { region, account_id };
    if let Some(target) = request.target {
        let operation = target.rsplit('.').next().unwrap_or(target);
        let body: Value = serde_json::from_slice(request.body).unwrap_or(Value::Null);
        return match service.as_deref() {
            Some("dynamodb") => dynamodb(operation, &body, &arns),
            Some("secretsmanager") => vec![secrets_manager(operation, &body, &arns)],
            Some("kms") => vec![kms(operation, &body, &arns)],
            Some(other) => vec![Authorization {
                action: Some(format!("{other}:{operation}")),
                resource: "*".to_owned(),
                operation: operation.to_owned(),
                dynamodb_keys: None,
            }],
            None => vec![unnamed(request)],
        };
    }
    if let Some(action) = query_action(request) {
        let service = service.unwrap_or_else(|| "sts".to_owned());
        let resource = match action.as_str() {
            "AssumeRole" | "AssumeRoleWithWebIdentity" | "AssumeRoleWithSAML" => {
                form_field(request, "RoleArn").unwrap_or_else(|| "*".to_owned())
            }
            _ => "*".to_owned(),
        };
        return vec![Authorization {
            action: Some(format!("{service}:{action}")),
            resource,
            operation: action,
            dynamodb_keys: None,
        }];
    }
    if service.as_deref() == Some("route53") {
        return vec![route53(request)];
    }
    vec![unnamed(request)]
}

/// A request whose IAM action this module cannot name.
fn unnamed(request: &AwsRequest<'_>) -> Authorization {
    Authorization {
        action: None,
        resource: "*".to_owned(),
        operation: format!("{} {}", request.method, request.path),
        dynamodb_keys: None,
    }
}

/// Builds ARNs in one region and account.
struct Arns<'a> {
    region: &'a str,
    account_id: &'a str,
}

impl Arns<'_> {
    fn table(&self, table: &str) -> String {
        format!(
            "arn:{PARTITION}:dynamodb:{}:{}:table/{table}",
            self.region, self.account_id
        )
    }

    fn kms(&self, kind: &str, id: &str) -> String {
        format!(
            "arn:{PARTITION}:kms:{}:{}:{kind}/{id}",
            self.region, self.account_id
        )
    }

    fn secret(&self, name: &str) -> String {
        format!(
            "arn:{PARTITION}:secretsmanager:{}:{}:secret:{name}",
            self.region, self.account_id
        )
    }
}

/// The text of a DynamoDB attribute value in its JSON form (`{"S": "x"}` -> `x`).
fn attribute_text(value: &Value) -> String {
    let scalar = ["S", "N", "B"]
        .iter()
        .find_map(|kind| value.get(*kind).and_then(Value::as_str));
    match scalar {
        Some(text) => text.to_owned(),
        None => value.to_string(),
    }
}

/// The attributes of a key or item map, as text.
fn key_attributes(key: &Value) -> Option<BTreeMap<String, String>> {
    Some(
        key.as_object()?
            .iter()
            .map(|(name, value)| (name.clone(), attribute_text(value)))
            .collect(),
    )
}

/// The authorizations of a DynamoDB operation with JSON body `body`.
fn dynamodb(operation: &str, body: &Value, arns: &Arns<'_>) -> Vec<Authorization> {
    let on_table =
        |action: &str, table: &Value, keys: Option<Vec<BTreeMap<String, String>>>| Authorization {
            action: Some(format!("dynamodb:{action}")),
            resource: table
                .as_str()
                .map_or_else(|| "*".to_owned(), |t| arns.table(t)),
            operation: operation.to_owned(),
            dynamodb_keys: keys,
        };
    match operation {
        "GetItem" | "UpdateItem" | "DeleteItem" => {
            let keys = key_attributes(&body["Key"]).map(|key| vec![key]);
            vec![on_table(operation, &body["TableName"], keys)]
        }
        "PutItem" => {
            let keys = key_attributes(&body["Item"]).map(|item| vec![item]);
            vec![on_table(operation, &body["TableName"], keys)]
        }
        "Query" | "Scan" => {
            let mut authorization = on_table(operation, &body["TableName"], None);
            if let Some(index) = body["IndexName"].as_str() {
                authorization.resource = format!("{}/index/{index}", authorization.resource);
            }
            if operation == "Query" {
                authorization.dynamodb_keys = key_condition_equalities(body).map(|keys| vec![keys]);
            }
            vec![authorization]
        }
        "TransactWriteItems" | "TransactGetItems" => body["TransactItems"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|item| {
                let (kind, write) = item.as_object()?.iter().next()?;
                let (action, key) = match kind.as_str() {
                    "Put" => ("PutItem", &write["Item"]),
                    "Update" => ("UpdateItem", &write["Key"]),
                    "Delete" => ("DeleteItem", &write["Key"]),
                    "ConditionCheck" => ("ConditionCheckItem", &write["Key"]),
                    "Get" => ("GetItem", &write["Key"]),
                    _ => return None,
                };
                let keys = key_attributes(key).map(|key| vec![key]);
                Some(on_table(action, &write["TableName"], keys))
            })
            .collect(),
        "BatchGetItem" | "BatchWriteItem" => body["RequestItems"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(table, requests)| {
                let keys: Option<Vec<_>> = if operation == "BatchGetItem" {
                    requests["Keys"]
                        .as_array()
                        .map(|keys| keys.iter().filter_map(key_attributes).collect())
                } else {
                    requests.as_array().map(|writes| {
                        writes
                            .iter()
                            .filter_map(|write| {
                                key_attributes(&write["PutRequest"]["Item"])
                                    .or_else(|| key_attributes(&write["DeleteRequest"]["Key"]))
                            })
                            .collect()
                    })
                };
                on_table(operation, &Value::String(table.clone()), keys)
            })
            .collect(),
        _ => {
            let mut authorization = on_table(operation, &body["TableName"], None);
            if let Some(arn) = body["ResourceArn"].as_str() {
                authorization.resource = arn.to_owned();
            }
            vec![authorization]
        }
    }
}

/// The `attribute = :value` conjuncts of a query's key condition, names and values resolved;
/// `None` when the expression is not read here.
fn key_condition_equalities(body: &Value) -> Option<BTreeMap<String, String>> {
    let expression = body["KeyConditionExpression"].as_str()?;
    let names = &body["ExpressionAttributeNames"];
    let values = &body["ExpressionAttributeValues"];
    let mut equalities = BTreeMap::new();
    for conjunct in split_and(expression) {
        let Some((left, right)) = conjunct.split_once('=') else {
            continue;
        };
        let (left, right) = (left.trim(), right.trim());
        // Either side may be the attribute; comparisons like `<=` leave a `<` behind.
        if left.ends_with(['<', '>', '!']) {
            continue;
        }
        let (attribute, placeholder) = if right.starts_with(':') {
            (left, right)
        } else if left.starts_with(':') {
            (right, left)
        } else {
            continue;
        };
        let attribute = if attribute.starts_with('#') {
            names[attribute].as_str()?.to_owned()
        } else {
            attribute.to_owned()
        };
        let value = values.get(placeholder)?;
        equalities.insert(attribute, attribute_text(value));
    }
    Some(equalities)
}

/// The parts of `expression` between top-level ` AND `s (case-insensitive).
fn split_and(expression: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let bytes = expression.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        let rest = &expression[index..];
        if depth == 0 && rest.len() >= 5 && rest[..5].eq_ignore_ascii_case(" AND ") {
            parts.push(&expression[start..index]);
            index += 5;
            start = index;
            continue;
        }
        index += 1;
    }
    parts.push(&expression[start..]);
    parts
}

/// The authorization of a Secrets Manager operation with JSON body `body`. The resource is the
/// secret's name-based ARN; [`Authorization::resource`] is replaced by the full ARN (with its
/// random suffix) when the response names it (see [`secret_arn_in_response`]).
fn secrets_manager(operation: &str, body: &Value, arns: &Arns<'_>) -> Authorization {
    let id = match operation {
        "CreateSecret" => body["Name"].as_str(),
        _ => body["SecretId"].as_str(),
    };
    let resource = match id {
        Some(arn) if arn.starts_with("arn:") => arn.to_owned(),
        Some(name) => arns.secret(name),
        None => "*".to_owned(),
    };
    Authorization {
        action: Some(format!("secretsmanager:{operation}")),
        resource,
        operation: operation.to_owned(),
        dynamodb_keys: None,
    }
}

/// The authorization of a KMS operation with JSON body `body`: on the key its `KeyId` names
/// (an ARN as is, a key id or an alias in this account and region). IAM authorizes a request
/// made by alias against the key the alias points to; EdgeCert's deployed processes name their
/// key by ARN, so the alias form is only met locally. Without a `KeyId` (a `Decrypt` may omit
/// it) the resource is `*` until the answer names the key.
fn kms(operation: &str, body: &Value, arns: &Arns<'_>) -> Authorization {
    let resource = match body["KeyId"].as_str() {
        Some(arn) if arn.starts_with("arn:") => arn.to_owned(),
        Some(alias) if alias.starts_with("alias/") => arns.kms("alias", &alias["alias/".len()..]),
        Some(id) => arns.kms("key", id),
        None => "*".to_owned(),
    };
    Authorization {
        action: Some(format!("kms:{operation}")),
        resource,
        operation: operation.to_owned(),
        dynamodb_keys: None,
    }
}

/// The key ARN a KMS response names (`"KeyId"`, an ARN in `Decrypt`, `GenerateDataKey` and
/// `Encrypt` answers), if any.
pub fn kms_key_arn_in_response(body: &[u8]) -> Option<String> {
    let body: Value = serde_json::from_slice(body).ok()?;
    body["KeyId"]
        .as_str()
        .filter(|id| id.starts_with("arn:"))
        .map(str::to_owned)
}

/// The secret ARN a Secrets Manager response names (`"ARN"`), if any.
pub fn secret_arn_in_response(body: &[u8]) -> Option<String> {
    let body: Value = serde_json::from_slice(body).ok()?;
    body["ARN"].as_str().map(str::to_owned)
}

/// The access key an STS `AssumeRole` response hands out (`<AccessKeyId>` in its XML).
pub fn assumed_access_key_in_response(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<AccessKeyId>")? + "<AccessKeyId>".len();
    let end = start + text[start..].find("</AccessKeyId>")?;
    Some(text[start..end].trim().to_owned())
}

/// The authorization of a Route 53 REST request.
fn route53(request: &AwsRequest<'_>) -> Authorization {
    let segments: Vec<&str> = request
        .path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .skip(1) // the API version, `2013-04-01`
        .collect();
    let zone = |id: &str| format!("arn:{PARTITION}:route53:::hostedzone/{id}");
    let named = |action: &str, resource: String| Authorization {
        action: Some(format!("route53:{action}")),
        resource,
        operation: format!("{} {}", request.method, request.path),
        dynamodb_keys: None,
    };
    match (request.method, segments.as_slice()) {
        ("POST", ["hostedzone"]) => named("CreateHostedZone", "*".to_owned()),
        ("GET", ["hostedzone"]) => named("ListHostedZones", "*".to_owned()),
        ("GET", ["hostedzonesbyname"]) => named("ListHostedZonesByName", "*".to_owned()),
        ("GET", ["hostedzonecount"]) => named("GetHostedZoneCount", "*".to_owned()),
        ("GET", ["hostedzone", id]) => named("GetHostedZone", zone(id)),
        ("DELETE", ["hostedzone", id]) => named("DeleteHostedZone", zone(id)),
        ("POST", ["hostedzone", id]) => named("UpdateHostedZoneComment", zone(id)),
        ("POST", ["hostedzone", id, "rrset"]) => named("ChangeResourceRecordSets", zone(id)),
        ("GET", ["hostedzone", id, "rrset"]) => named("ListResourceRecordSets", zone(id)),
        ("GET", ["change", id]) => named(
            "GetChange",
            format!("arn:{PARTITION}:route53:::change/{id}"),
        ),
        ("GET", ["tags", "hostedzone", id]) => named("ListTagsForResource", zone(id)),
        ("POST", ["tags", "hostedzone", id]) => named("ChangeTagsForResource", zone(id)),
        _ => unnamed(request),
    }
}

/// The `Action` of a Query-protocol request (form body or query string).
fn query_action(request: &AwsRequest<'_>) -> Option<String> {
    form_field(request, "Action")
}

/// A field of the form body, else of the query string.
fn form_field(request: &AwsRequest<'_>, name: &str) -> Option<String> {
    let find = |encoded: &[u8]| {
        url::form_urlencoded::parse(encoded)
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    find(request.body).or_else(|| request.query.and_then(|query| find(query.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ACCOUNT: &str = "123456789012";

    fn signed(service: &str) -> Signature {
        Signature::read(&format!(
            "AWS4-HMAC-SHA256 Credential=test/20250101/eu-west-1/{service}/aws4_request, SignedHeaders=host, Signature=00"
        ))
        .unwrap()
    }

    fn json_request(service: &str, target: &str, body: &Value) -> Vec<Authorization> {
        let signature = signed(service);
        let body = body.to_string();
        authorizations(
            &AwsRequest {
                method: "POST",
                path: "/",
                query: None,
                target: Some(target),
                signature: Some(&signature),
                body: body.as_bytes(),
            },
            ACCOUNT,
        )
    }

    fn keys(pairs: &[(&str, &str)]) -> Option<Vec<BTreeMap<String, String>>> {
        Some(vec![
            pairs
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
        ])
    }

    #[test]
    fn the_signature_names_key_region_and_service() {
        let signature = signed("dynamodb");
        assert_eq!(
            signature,
            Signature {
                access_key_id: "test".to_owned(),
                region: "eu-west-1".to_owned(),
                service: "dynamodb".to_owned(),
            }
        );
        assert_eq!(Signature::read("Bearer x"), None);
    }

    #[test]
    fn a_transaction_is_authorized_item_by_item() {
        let found = json_request(
            "dynamodb",
            "DynamoDB_20120810.TransactWriteItems",
            &json!({"TransactItems": [
                {"Put": {"TableName": "t", "Item": {"PK": {"S": "ACCT#a"}, "SK": {"S": "DOM#1"}, "data": {"S": "{}"}}}},
                {"Update": {"TableName": "t", "Key": {"PK": {"S": "ACCT#a"}, "SK": {"S": "ACCOUNT"}}}},
                {"Delete": {"TableName": "t", "Key": {"PK": {"S": "HOST#x"}, "SK": {"S": "HOST"}}}},
                {"ConditionCheck": {"TableName": "u", "Key": {"PK": {"S": "P"}, "SK": {"N": "1"}}}}
            ]}),
        );
        let summary: Vec<(Option<&str>, &str)> = found
            .iter()
            .map(|a| (a.action.as_deref(), a.resource.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    Some("dynamodb:PutItem"),
                    "arn:aws:dynamodb:eu-west-1:123456789012:table/t"
                ),
                (
                    Some("dynamodb:UpdateItem"),
                    "arn:aws:dynamodb:eu-west-1:123456789012:table/t"
                ),
                (
                    Some("dynamodb:DeleteItem"),
                    "arn:aws:dynamodb:eu-west-1:123456789012:table/t"
                ),
                (
                    Some("dynamodb:ConditionCheckItem"),
                    "arn:aws:dynamodb:eu-west-1:123456789012:table/u"
                ),
            ]
        );
        assert_eq!(
            found[2].dynamodb_keys,
            keys(&[("PK", "HOST#x"), ("SK", "HOST")])
        );
        assert_eq!(found[3].dynamodb_keys, keys(&[("PK", "P"), ("SK", "1")]));
        assert!(found.iter().all(|a| a.operation == "TransactWriteItems"));
    }

    #[test]
    fn a_query_names_its_index_and_its_key_equalities() {
        let found = json_request(
            "dynamodb",
            "DynamoDB_20120810.Query",
            &json!({
                "TableName": "t", "IndexName": "by_due",
                "KeyConditionExpression": "#pk = :pk AND #sk <= :due",
                "ExpressionAttributeNames": {"#pk": "GSI2PK", "#sk": "GSI2SK"},
                "ExpressionAttributeValues": {":pk": {"S": "DUE"}, ":due": {"S": "0001"}}
            }),
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].action.as_deref(), Some("dynamodb:Query"));
        assert_eq!(
            found[0].resource,
            "arn:aws:dynamodb:eu-west-1:123456789012:table/t/index/by_due"
        );
        assert_eq!(found[0].dynamodb_keys, keys(&[("GSI2PK", "DUE")]));

        let on_table = json_request(
            "dynamodb",
            "DynamoDB_20120810.Query",
            &json!({
                "TableName": "t",
                "KeyConditionExpression": "PK = :pk and begins_with(SK, :prefix)",
                "ExpressionAttributeValues": {":pk": {"S": "EVENTS#c"}, ":prefix": {"S": "EVT#"}}
            }),
        );
        assert_eq!(on_table[0].dynamodb_keys, keys(&[("PK", "EVENTS#c")]));
    }

    #[test]
    fn secrets_are_named_by_arn() {
        let created = json_request(
            "secretsmanager",
            "secretsmanager.CreateSecret",
            &json!({"Name": "stack/cert/c1", "SecretString": "never recorded"}),
        );
        assert_eq!(
            created[0].resource,
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:stack/cert/c1"
        );
        let read = json_request(
            "secretsmanager",
            "secretsmanager.GetSecretValue",
            &json!({"SecretId": "arn:aws:secretsmanager:eu-west-1:1:secret:x-AbCdEf"}),
        );
        assert_eq!(
            read[0].action.as_deref(),
            Some("secretsmanager:GetSecretValue")
        );
        assert_eq!(
            read[0].resource,
            "arn:aws:secretsmanager:eu-west-1:1:secret:x-AbCdEf"
        );
        assert_eq!(
            secret_arn_in_response(
                br#"{"ARN": "arn:aws:secretsmanager:r:1:secret:n-123456", "Name": "n"}"#
            ),
            Some("arn:aws:secretsmanager:r:1:secret:n-123456".to_owned())
        );
    }

    #[test]
    fn kms_requests_are_authorized_on_their_key() {
        let by_arn = json_request(
            "kms",
            "TrentService.Decrypt",
            &json!({"KeyId": "arn:aws:kms:eu-west-1:123456789012:key/k-1", "CiphertextBlob": "AAAA"}),
        );
        assert_eq!(by_arn[0].action.as_deref(), Some("kms:Decrypt"));
        assert_eq!(
            by_arn[0].resource,
            "arn:aws:kms:eu-west-1:123456789012:key/k-1"
        );
        let by_id = json_request(
            "kms",
            "TrentService.GenerateDataKey",
            &json!({"KeyId": "k-2", "KeySpec": "AES_256"}),
        );
        assert_eq!(by_id[0].action.as_deref(), Some("kms:GenerateDataKey"));
        assert_eq!(
            by_id[0].resource,
            "arn:aws:kms:eu-west-1:123456789012:key/k-2"
        );
        let by_alias = json_request(
            "kms",
            "TrentService.GenerateDataKey",
            &json!({"KeyId": "alias/edgecert"}),
        );
        assert_eq!(
            by_alias[0].resource,
            "arn:aws:kms:eu-west-1:123456789012:alias/edgecert"
        );
        let unnamed = json_request(
            "kms",
            "TrentService.Decrypt",
            &json!({"CiphertextBlob": "A"}),
        );
        assert_eq!(unnamed[0].resource, "*");
        assert_eq!(
            kms_key_arn_in_response(br#"{"KeyId": "arn:aws:kms:r:1:key/k", "Plaintext": "x"}"#),
            Some("arn:aws:kms:r:1:key/k".to_owned())
        );
    }

    #[test]
    fn route53_operations_are_read_from_the_path() {
        let signature = signed("route53");
        let request = |method, path| {
            authorizations(
                &AwsRequest {
                    method,
                    path,
                    query: None,
                    target: None,
                    signature: Some(&signature),
                    body: b"<xml/>",
                },
                ACCOUNT,
            )
            .remove(0)
        };
        let change = request("POST", "/2013-04-01/hostedzone/Z123/rrset/");
        assert_eq!(
            change.action.as_deref(),
            Some("route53:ChangeResourceRecordSets")
        );
        assert_eq!(change.resource, "arn:aws:route53:::hostedzone/Z123");
        let poll = request("GET", "/2013-04-01/change/C9");
        assert_eq!(poll.action.as_deref(), Some("route53:GetChange"));
        assert_eq!(poll.resource, "arn:aws:route53:::change/C9");
        let unknown = request("PUT", "/2013-04-01/somethingnew");
        assert_eq!(unknown.action, None);
        assert_eq!(unknown.operation, "PUT /2013-04-01/somethingnew");
    }

    #[test]
    fn sts_query_requests_name_their_action_and_role() {
        let signature = signed("sts");
        let body = b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A210987654321%3Arole%2Fdns&ExternalId=acct_1";
        let found = authorizations(
            &AwsRequest {
                method: "POST",
                path: "/",
                query: None,
                target: None,
                signature: Some(&signature),
                body,
            },
            ACCOUNT,
        );
        assert_eq!(found[0].action.as_deref(), Some("sts:AssumeRole"));
        assert_eq!(found[0].resource, "arn:aws:iam::210987654321:role/dns");
        assert_eq!(
            assumed_access_key_in_response(
                b"<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIAEXAMPLE</AccessKeyId></Credentials></AssumeRoleResult></AssumeRoleResponse>"
            ),
            Some("ASIAEXAMPLE".to_owned())
        );
    }
}
