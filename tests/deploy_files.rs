//! The files shipped to run shards elsewhere (`deploy/`, `config/systemd/`) hold together: the
//! Kubernetes shard's configuration loads with the secrets its Secret provides, its pairs' state
//! files land on the shard's volume, and every variable the configuration names is one the
//! manifests and docs tell the operator to put in the Secret.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hotspot_ghl_sync::config::{Form, Installation};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The `--from-literal=NAME=` variables of the `kubectl create secret` line in the shard's
/// kustomization.
fn secret_variables() -> Vec<String> {
    read("deploy/kubernetes/shard/kustomization.yaml")
        .split("--from-literal=")
        .skip(1)
        .map(|s| s.split('=').next().unwrap().to_string())
        .collect()
}

#[test]
fn the_kubernetes_shard_config_loads_with_the_secrets_its_secret_provides() {
    let vars = secret_variables();
    assert!(
        vars.len() >= 3,
        "the Secret line names the variables: {vars:?}"
    );
    let env: HashMap<String, String> = vars
        .iter()
        .map(|v| (v.clone(), format!("value-of-{v}")))
        .collect();
    let path = repo("deploy/kubernetes/shard/config.toml");
    let inst = Installation::from_str_with_env(
        &read("deploy/kubernetes/shard/config.toml"),
        &path,
        &|k| env.get(k).cloned(),
    )
    .unwrap_or_else(|e| panic!("the shard's config.toml must load: {e}"));
    assert_eq!(inst.form, Form::Pairs);
    assert!(inst.pairs.len() >= 2);
    for pair in &inst.pairs {
        // On the shard's persistent volume, mounted at /var/lib/hotspot-ghl-sync.
        assert!(
            pair.config
                .state
                .path
                .starts_with("/var/lib/hotspot-ghl-sync/"),
            "pair {} keeps its state off the volume: {}",
            pair.name,
            pair.config.state.path.display()
        );
    }
    // A pair's override reaches it and no other pair.
    let countries: Vec<&str> = inst
        .pairs
        .iter()
        .map(|p| p.config.contacts.default_country.as_str())
        .collect();
    assert!(
        countries.windows(2).any(|w| w[0] != w[1]),
        "the example shows a per-pair override: {countries:?}"
    );
}

#[test]
fn the_kubernetes_shard_config_names_no_variable_the_secret_lacks() {
    let vars = secret_variables();
    let path = repo("deploy/kubernetes/shard/config.toml");
    // The dashboard's token is read when the dashboard starts, not when the file loads.
    let dashboard_token = "HGS_DASHBOARD_TOKEN";
    assert!(vars.iter().any(|v| v == dashboard_token), "{vars:?}");
    assert!(
        read("deploy/kubernetes/shard/config.toml")
            .contains(&format!("token_env = \"{dashboard_token}\"")),
        "the dashboard's credentials are the Secret's"
    );
    for missing in vars.iter().filter(|v| *v != dashboard_token) {
        let env: HashMap<String, String> = vars
            .iter()
            .filter(|v| *v != missing)
            .map(|v| (v.clone(), "x".to_string()))
            .collect();
        let err = Installation::from_str_with_env(
            &read("deploy/kubernetes/shard/config.toml"),
            &path,
            &|k| env.get(k).cloned(),
        )
        .expect_err(&format!(
            "{missing} is in the Secret line, so the configuration must use it"
        ));
        assert!(err.to_string().contains(missing.as_str()), "{err}");
    }
}

#[test]
fn the_manifests_and_the_image_agree_on_user_port_and_paths() {
    let dockerfile = read("deploy/container/Dockerfile");
    let deployment = read("deploy/kubernetes/shard/deployment.yaml");
    let cronjob = read("deploy/kubernetes/shard/cronjob.yaml");
    let unit = read("config/systemd/hotspot-ghl-sync@.service");
    assert!(dockerfile.contains("USER 10001:10001"));
    assert!(deployment.contains("runAsUser: 10001"));
    assert!(cronjob.contains("runAsUser: 10001"));
    assert!(dockerfile.contains("http://127.0.0.1:8686/healthz"));
    assert!(deployment.contains("containerPort: 8686"));
    assert!(deployment.contains("path: /healthz"));
    for text in [&dockerfile, &deployment] {
        assert!(text.contains("\"run\", \"--listen\", \"0.0.0.0:8686\", \"--allow-remote\""));
    }
    assert!(deployment.contains("/etc/hotspot-ghl-sync/hotspot-ghl-sync.toml"));
    assert!(dockerfile.contains("HGS_CONFIG=/etc/hotspot-ghl-sync/hotspot-ghl-sync.toml"));
    assert!(unit.contains("ExecStart=/usr/local/bin/hotspot-ghl-sync run --listen ${HGS_LISTEN}"));
    assert!(unit.contains("HGS_CONFIG=/etc/hotspot-ghl-sync/%i.toml"));
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
}

/// The arguments the image and the Deployment give the binary are ones it takes.
#[test]
fn the_shipped_command_line_parses() {
    let bin = env!("CARGO_BIN_EXE_hotspot-ghl-sync");
    let out = std::process::Command::new(bin)
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    assert!(help.contains("--listen"), "{help}");
    assert!(help.contains("--allow-remote"), "{help}");
}
