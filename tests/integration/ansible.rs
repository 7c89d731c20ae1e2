//! The playbook's vars through a REAL ansible-local run: gears bakes against moto with its own
//! provisioners, packer's SSH communicator goes to the private sshd scripts/test.sh starts on
//! 127.0.0.1, ansible-local uploads the playbook, the roles and gears' vars file and runs
//! ansible-playbook there, and the playbook writes down what it received. Values with Jinja
//! syntax (`{%raw%}`, `{#`, `1.0-{%`), quotes, `$`, `;` and newlines must arrive byte for byte
//! (issue 12, defect 4: before, `2.0 {%raw%}` arrived as `2.0 ` and `1.0-{%` failed the play).

use crate::common::{gears_moto, need, parts, tempdir, unique_name};
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Version and vars with everything Ansible's templating, a shell or Packer could change.
const VERSION: &str = "2.0 {%raw%} {# x 1.0-{% it's $HOME; `id` \"q\"";
const NASTY: &str = "a {%raw%} b }} {%endraw%} {# c 1.0-{% it's $HOME; rm -rf / `id` $(id) \"q\" \\ ;\nsecond line\ttab é ☕ 😀";

#[tokio::test]
async fn values_with_jinja_syntax_arrive_intact_through_a_real_ansible_local_run() {
    real_ansible_local_run("local-ssh.json.tera").await;
}

/// The same through a component's own HCL2 template (Packer 1.6.6 reads it too).
#[tokio::test]
async fn values_arrive_intact_through_an_own_hcl2_template_and_a_real_ansible_local_run() {
    real_ansible_local_run("local-ssh.pkr.hcl.tera").await;
}

async fn real_ansible_local_run(fixture_name: &str) {
    let ssh = need("GEARS_TEST_SSH");
    let (user, key) = (need("GEARS_TEST_SSH_USER"), need("GEARS_TEST_SSH_KEY"));
    let port = ssh.rsplit_once(':').unwrap().1;
    let dir = tempdir();
    let name = unique_name("ansible");
    let record = dir.path().join("record");
    std::fs::create_dir(&record).unwrap();

    let fixture =
        std::fs::read_to_string(format!("{ROOT}/tests/fixtures/bake/{fixture_name}")).unwrap();
    let template = dir.path().join(fixture_name);
    std::fs::write(
        &template,
        fixture
            .replace("__SSH_PORT__", port)
            .replace("__SSH_KEY__", &key),
    )
    .unwrap();
    let json = |v: &str| serde_json::to_string(v).unwrap();
    let roles = format!("{ROOT}/examples/hello-service/ansible/roles");
    let text = format!(
        "component: {name}\nrepo: https://git.example.com/team/{name}.git\nami_regions: [us-east-1]\nbuilders: [amazon-ebs]\nbase_ami: {{id: ami-04681a1dbd79675a5}}\nssh_username: {user}\ntemplate: {template}\nansible:\n  playbook: {ROOT}/tests/fixtures/ansible/record-vars.yml\n  roles: [{roles}]\n  vars:\n    record_to: {record}\n    env_file: {env}\n    greeting: {greeting}\n    listen_port: 8080\n    flag: true\n    nasty: {nasty}\n    list: [{l1}, {l2}, \"x y\"]\n    nested: {{k: {l3}}}\n",
        template = template.display(),
        record = json(&record.display().to_string()),
        env = json(&record.join("hello.env").display().to_string()),
        greeting = json("hello {# world #}"),
        nasty = json(NASTY),
        l1 = json("{%raw%}"),
        l2 = json("1.0-{%"),
        l3 = json("{% if x %}"),
    );
    std::fs::write(dir.path().join("gears.yaml"), text).unwrap();

    let start = std::time::Instant::now();
    let o = gears_moto(dir.path())
        .args(["bake", "--version", VERSION, "--git-sha", "beef"])
        .output()
        .unwrap();
    let took = start.elapsed();
    let (out, err, code) = parts(&o);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ami-"), "{out}");
    assert!(
        err.contains("Executing Ansible"),
        "a real ansible-local run: {err}"
    );
    eprintln!("bake with a real ansible-local run: {took:?}");

    let got: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(record.join("vars.json")).unwrap()).unwrap();
    assert_eq!(
        got,
        serde_json::json!({
            "COMPONENT_NAME": name,
            "COMPONENT_VERSION": VERSION,
            "nasty": NASTY,
            "list": ["{%raw%}", "1.0-{%", "x y"],
            "nested": {"k": "{% if x %}"},
            "listen_port": 8080,
            "flag": true,
        })
    );
    // The example's role writes the same values into its env file, byte for byte.
    assert_eq!(
        std::fs::read_to_string(record.join("hello.env")).unwrap(),
        format!(
            "COMPONENT_NAME={name}\nCOMPONENT_VERSION={VERSION}\nGREETING=hello {{# world #}}\nLISTEN_PORT=8080\n"
        )
    );
    // ansible-local removed its staging directory (playbook, roles and the vars file).
    let work = std::fs::read_dir(dir.path().join(".gears"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let run_id = work.file_name().into_string().unwrap();
    assert!(!Path::new(&format!("/tmp/gears-ansible-{run_id}")).exists());
}
