"""The Debian aws cli (v2) against a live cloud of 3 peers, 2 edges: every
action of the EC2 contract (contract.py, through --cli-input-json), then the
cli's own argument forms (shorthand, fileb://, --query, --dry-run) and how
it reports a service error: exit status 254 and
"An error occurred (CODE) when calling the OP operation"."""

import json
import tempfile
import unittest

import fixture
from contract import Ec2Contract
from fixture import AwsCli, eventually, unique


class AwsCliContract(Ec2Contract, unittest.TestCase):
    client_class = AwsCli

    def test_cli_is_v2(self):
        self.assertEqual(AwsCli.version(), 2, "expected the Debian aws v2")


class AwsCliForms(unittest.TestCase):
    """The cli's everyday argument forms, as a person types them."""

    @classmethod
    def setUpClass(cls):
        cloud = fixture.CLOUD
        cls.cloud = cloud
        cls.e0 = AwsCli(cloud, cloud.A, 0)
        cls.e1 = AwsCli(cloud, cloud.A, 1)

    def ok(self, cli, *args):
        cp = cli.run(*args)
        self.assertEqual(cp.returncode, 0, f"aws {' '.join(args)}: "
                                           f"{cp.stderr}")
        return cp.stdout

    def fails(self, cli, code, op, *args):
        cp = cli.run(*args)
        self.assertEqual(cp.returncode, 254, f"aws {' '.join(args)}: "
                                             f"{cp.returncode} {cp.stderr}")
        self.assertIn(f"An error occurred ({code}) when calling the {op} "
                      "operation", cp.stderr)
        return cp

    def test_group_by_flags(self):
        name = unique("cli-sg")
        gid = self.ok(self.e0, "ec2", "create-security-group",
                      "--group-name", name, "--description", "cli <test>",
                      "--query", "GroupId", "--output", "text").strip()
        self.assertRegex(gid, r"^sg-[0-9a-f]+$")
        self.ok(self.e0, "ec2", "authorize-security-group-ingress",
                "--group-id", gid, "--protocol", "tcp", "--port", "22",
                "--cidr", "10.0.0.0/8")
        self.ok(self.e0, "ec2", "authorize-security-group-ingress",
                "--group-id", gid, "--ip-permissions",
                "IpProtocol=tcp,FromPort=8000,ToPort=8080,"
                "IpRanges=[{CidrIp=192.0.2.0/24,Description=alt}]")
        self.ok(self.e0, "ec2", "create-tags", "--resources", gid,
                "--tags", "Key=Name,Value=cli-web")

        def seen():
            out = self.ok(self.e1, "ec2", "describe-security-groups",
                          "--filters", f"Name=group-name,Values={name}",
                          "--query", "SecurityGroups[0]")
            g = json.loads(out)
            self.assertIsNotNone(g, "not listed yet")
            self.assertEqual(g["GroupId"], gid)
            ports = sorted((p["FromPort"], p["ToPort"])
                           for p in g["IpPermissions"])
            self.assertEqual(ports, [(22, 22), (8000, 8080)])
            self.assertEqual(g.get("Tags"),
                             [{"Key": "Name", "Value": "cli-web"}])
            return g
        eventually(seen, what="group with rules and tag on edge 1")
        out = self.ok(self.e1, "ec2", "describe-tags", "--filters",
                      f"Name=resource-id,Values={gid}", "--output", "text")
        self.assertIn("cli-web", out)
        self.ok(self.e1, "ec2", "revoke-security-group-ingress",
                "--group-id", gid, "--protocol", "tcp", "--port", "22",
                "--cidr", "10.0.0.0/8")
        self.ok(self.e1, "ec2", "delete-tags", "--resources", gid,
                "--tags", "Key=Name")
        self.ok(self.e1, "ec2", "delete-security-group", "--group-id", gid)
        eventually(lambda: self.fails(
            self.e0, "InvalidGroup.NotFound", "DescribeSecurityGroups",
            "ec2", "describe-security-groups", "--group-ids", gid),
            what="deleted group gone on edge 0")
        self.fails(self.e0, "InvalidGroupId.Malformed",
                   "DescribeSecurityGroups", "ec2",
                   "describe-security-groups", "--group-ids", "sg-xyz")

    def test_key_pairs_by_flags(self):
        line, fp = fixture.new_rsa_public()
        name = unique("cli-key")
        with tempfile.NamedTemporaryFile(suffix=".pub") as f:
            f.write(line + b"\n")
            f.flush()
            out = self.ok(self.e0, "ec2", "import-key-pair", "--key-name",
                          name, "--public-key-material", f"fileb://{f.name}")
        self.assertEqual(json.loads(out)["KeyFingerprint"], fp)
        out = eventually(lambda: self.ok(
            self.e1, "ec2", "describe-key-pairs", "--key-names", name,
            "--query", "KeyPairs[0].KeyFingerprint", "--output", "text"),
            what="imported key on edge 1")
        self.assertEqual(out.strip(), fp)
        made = unique("cli-made")
        pem = self.ok(self.e1, "ec2", "create-key-pair", "--key-name", made,
                      "--query", "KeyMaterial", "--output", "text")
        bits, sha1 = fixture.rsa_private_facts(pem)
        self.assertEqual(bits, 2048)
        fp2 = self.ok(self.e1, "ec2", "describe-key-pairs", "--key-names",
                      made, "--query", "KeyPairs[0].KeyFingerprint",
                      "--output", "text").strip()
        self.assertEqual(fp2, sha1)
        for n in (name, made):
            self.ok(self.e1, "ec2", "delete-key-pair", "--key-name", n)
        self.fails(self.e1, "InvalidKeyPair.NotFound", "DescribeKeyPairs",
                   "ec2", "describe-key-pairs", "--key-names", made)

    def test_read_only_commands(self):
        out = self.ok(self.e0, "sts", "get-caller-identity", "--query",
                      "Account", "--output", "text")
        self.assertEqual(out.strip(), self.cloud.A.id)
        out = self.ok(self.e1, "ec2", "describe-regions", "--query",
                      "Regions[].RegionName", "--output", "text")
        self.assertEqual(out.split(), [fixture.REGION])
        out = self.ok(self.e1, "ec2", "describe-availability-zones",
                      "--query", "AvailabilityZones[].ZoneName",
                      "--output", "text")
        self.assertEqual(sorted(out.split()), list(fixture.ZONES))
        out = self.ok(self.e0, "ec2", "describe-instances", "--query",
                      "Reservations", "--output", "json")
        self.assertEqual(json.loads(out), [])
        out = self.ok(self.e0, "ec2", "describe-vpcs", "--filters",
                      "Name=isDefault,Values=true", "--query",
                      "Vpcs[].CidrBlock", "--output", "text")
        self.assertEqual(out.split(), [fixture.DEFAULT_VPC_CIDR])
        out = self.ok(self.e1, "ec2", "describe-subnets", "--filters",
                      "Name=default-for-az,Values=true", "--query",
                      "length(Subnets)")
        self.assertEqual(int(out), len(fixture.ZONES))
        out = self.ok(self.e0, "ec2", "describe-instance-types", "--query",
                      "InstanceTypes[].InstanceType", "--output", "text")
        self.assertTrue(out.split())
        out = self.ok(self.e0, "ec2", "describe-images", "--owners", "self",
                      "--query", "Images", "--output", "json")
        self.assertIsInstance(json.loads(out), list)
        self.ok(self.e1, "ec2", "describe-account-attributes", "--output",
                "table")

    def test_dry_run(self):
        cp = self.fails(self.e0, "DryRunOperation", "CreateSecurityGroup",
                        "ec2", "create-security-group", "--dry-run",
                        "--group-name", unique("dry"), "--description", "x")
        self.assertIn("DryRun flag is set", cp.stderr)

    def test_auth_errors(self):
        wrong = fixture.Account("wrong", self.cloud.A.id,
                                self.cloud.A.key_id, "x" * 40)
        cp = AwsCli(self.cloud, wrong, 0).run("ec2", "describe-regions")
        self.assertEqual(cp.returncode, 254, cp.stderr)
        self.assertRegex(cp.stderr, r"An error occurred \((AuthFailure|"
                         r"SignatureDoesNotMatch)\) when calling the "
                         r"DescribeRegions operation")
        nobody = fixture.Account("nobody", "000000000000",
                                 "AKIAIOSFODNN7EXAMPLE", "y" * 40)
        self.fails(AwsCli(self.cloud, nobody, 1), "AuthFailure",
                   "DescribeRegions", "ec2", "describe-regions")


if __name__ == "__main__":
    fixture.main(parallel=4)
