//! What both APIs' OpenAPI documents need beyond what utoipa writes.

use serde_json::Value;
use utoipa::openapi::OpenApi;

/// The document as JSON (what `/openapi.json` serves), with every optional parameter's schema made non-nullable:
/// utoipa writes an `Option<T>` parameter as `type: [T, "null"]`, but a header or query parameter is either sent
/// or not; there is no null to send (a client following the nullable schema would send the text `null`, which the
/// servers refuse).
pub fn served(doc: &OpenApi) -> Value {
    let mut json = serde_json::to_value(doc).unwrap_or(Value::Null);
    if let Some(paths) = json.get_mut("paths").and_then(Value::as_object_mut) {
        for operation in paths.values_mut().filter_map(Value::as_object_mut).flat_map(|p| p.values_mut()) {
            let Some(parameters) = operation.get_mut("parameters").and_then(Value::as_array_mut) else { continue };
            for schema in parameters.iter_mut().filter_map(|p| p.get_mut("schema")) {
                drop_null(schema);
            }
        }
    }
    json
}

fn drop_null(schema: &mut Value) {
    let Some(types) = schema.get_mut("type") else { return };
    if let Some(list) = types.as_array_mut() {
        list.retain(|t| t != "null");
        if let [only] = list.as_slice() {
            *types = only.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_an_optional_parameter_then_its_schema_loses_null_and_keeps_the_rest() {
        let doc: OpenApi = serde_json::from_value(serde_json::json!({
            "openapi": "3.1.0",
            "info": { "title": "t", "version": "1" },
            "paths": { "/x": { "get": {
                "parameters": [
                    { "name": "If-Match", "in": "header", "required": false,
                      "schema": { "type": ["string", "null"], "pattern": "^a$" } },
                    { "name": "limit", "in": "query", "required": false,
                      "schema": { "type": ["integer", "null"], "minimum": 1 } }
                ],
                "responses": {}
            } } }
        }))
        .unwrap();
        let out = served(&doc);
        let params = &out["paths"]["/x"]["get"]["parameters"];
        assert_eq!(params[0]["schema"], serde_json::json!({ "type": "string", "pattern": "^a$" }));
        assert_eq!(params[1]["schema"], serde_json::json!({ "type": "integer", "minimum": 1 }));
    }
}
