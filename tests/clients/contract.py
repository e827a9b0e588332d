"""The EC2 contract every client must see, written once and run through each
client (test_awscli.py, test_boto3.py, test_jssdk.py).

A subclass sets `client_class` (an adapter from fixture.py).  `self.a0` is
account A on edge 0, `self.a1` account A on edge 1.  Writes go through one
edge and are read back through the other, allowing GOSSIP_WAIT seconds for
the record to arrive.  Result fields are the clients' (boto3 / JS SDK v3)
member names.
"""

import ipaddress
import re

import fixture
from fixture import ApiError, eventually, unique

ID = {
    "sg": re.compile(r"^sg-([0-9a-f]{8}|[0-9a-f]{17})$"),
    "key": re.compile(r"^key-[0-9a-f]{17}$"),
    "vpc": re.compile(r"^vpc-([0-9a-f]{8}|[0-9a-f]{17})$"),
    "subnet": re.compile(r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$"),
    "ami": re.compile(r"^ami-([0-9a-f]{8}|[0-9a-f]{17})$"),
}
MISSING = {   # well-formed ids that no cloud has
    "sg": "sg-0fedcba9876543210",
    "key": "key-0fedcba9876543210",
    "vpc": "vpc-0fedcba9876543210",
    "subnet": "subnet-0fedcba9876543210",
    "ami": "ami-0fedcba9876543210",
    "i": "i-0fedcba9876543210",
}
ALL_TRAFFIC = ("-1", None, None, "cidr", "0.0.0.0/0", None)


def rules(perms):
    """IpPermissions as a set of (proto, from, to, kind, source, desc)."""
    out = set()
    for p in perms or []:
        head = (p.get("IpProtocol"), p.get("FromPort"), p.get("ToPort"))
        if head[0] == "-1":
            head = ("-1", None, None)
        for r in p.get("IpRanges") or []:
            out.add(head + ("cidr", r.get("CidrIp"), r.get("Description")))
        for r in p.get("Ipv6Ranges") or []:
            out.add(head + ("cidr6", r.get("CidrIpv6"),
                            r.get("Description")))
        for g in p.get("UserIdGroupPairs") or []:
            out.add(head + ("group", g.get("GroupId"), g.get("Description")))
    return out


def tags_of(item):
    return {t["Key"]: t["Value"] for t in item.get("Tags") or []}


class CloudClients:
    """A test class's clients (of client_class) on the running cloud:
    a0 and a1 are account A through edges 0 and 1, b1 account B through
    edge 1."""
    client_class = None

    @classmethod
    def setUpClass(cls):
        cloud = fixture.CLOUD
        cls.cloud = cloud
        cls.a0 = cls.client_class(cloud, cloud.A, 0)
        cls.a1 = cls.client_class(cloud, cloud.A, 1)
        cls.b1 = cls.client_class(cloud, cloud.B, 1)


class Ec2Contract(CloudClients):
    """The EC2 API's contract, the same through every client."""

    # -- helpers -----------------------------------------------------------

    def err(self, client, code, op, params=None, service="ec2"):
        """Asserts that op fails with code, surfaced the client's way."""
        with self.assertRaises(ApiError,
                               msg=f"{client} {op} {params} should fail "
                                   f"with {code}") as cm:
            client.call(op, params, service=service)
        e = cm.exception
        self.assertEqual(e.code, code, f"{client} {op} {params}: {e}")
        client.check_error_surface(e, op)
        if e.status is not None:
            self.assertGreaterEqual(e.status, 400, e.status)
            self.assertLess(e.status, 600, e.status)
        return e

    def soon(self, fn, what):
        return eventually(fn, what=what)

    def only(self, items, what):
        self.assertEqual(len(items), 1, f"{what}: {items}")
        return items[0]

    def default_vpc_id(self, client):
        vpcs = client.call("DescribeVpcs", {"Filters": [
            {"Name": "isDefault", "Values": ["true"]}]})["Vpcs"]
        return self.only(vpcs, "default VPCs")["VpcId"]

    def describe_group(self, client, gid):
        r = client.call("DescribeSecurityGroups", {"GroupIds": [gid]})
        return self.only(r["SecurityGroups"], f"groups {gid}")

    def create_group(self, client, name=None, desc="clients tier",
                     **extra):
        name = name or unique("grp")
        r = client.call("CreateSecurityGroup",
                        dict({"GroupName": name, "Description": desc},
                             **extra))
        self.assertRegex(r["GroupId"], ID["sg"])
        return r["GroupId"], name

    def check_return(self, r):
        # Newer client models parse <return>; older ones drop it.
        if "Return" in r:
            self.assertIs(r["Return"], True, r)

    # -- regions, zones, account -------------------------------------------

    def test_regions(self):
        for c in (self.a0, self.a1):
            regions = c.call("DescribeRegions")["Regions"]
            r = self.only(regions, f"{c} regions")
            self.assertEqual(r["RegionName"], fixture.REGION)
            self.assertTrue(r.get("Endpoint"), r)
            self.assertEqual(r.get("OptInStatus"), "opt-in-not-required")
        r = self.a0.call("DescribeRegions",
                         {"RegionNames": [fixture.REGION]})["Regions"]
        self.assertEqual([x["RegionName"] for x in r], [fixture.REGION])
        r = self.a1.call("DescribeRegions", {"Filters": [
            {"Name": "region-name", "Values": [fixture.REGION]}]})
        self.assertEqual(len(r["Regions"]), 1)
        r = self.a1.call("DescribeRegions", {"Filters": [
            {"Name": "region-name", "Values": ["eu-nowhere-9"]}]})
        self.assertEqual(r["Regions"], [])

    def test_caller_identity(self):
        for c, acct in ((self.a0, self.cloud.A), (self.a1, self.cloud.A),
                        (self.b1, self.cloud.B)):
            r = c.call("GetCallerIdentity", service="sts")
            self.assertEqual(r["Account"], acct.id, f"{c}: {r}")
            self.assertTrue(r["Arn"].startswith(f"arn:aws:iam::{acct.id}:"),
                            r)
            self.assertTrue(r.get("UserId"), r)

    def test_availability_zones(self):
        for c in (self.a0, self.a1):
            zones = c.call("DescribeAvailabilityZones")["AvailabilityZones"]
            self.assertEqual(sorted(z["ZoneName"] for z in zones),
                             list(fixture.ZONES), f"{c}: {zones}")
            for z in zones:
                self.assertEqual(z["State"], "available", z)
                self.assertEqual(z["RegionName"], fixture.REGION, z)
                self.assertTrue(z.get("ZoneId"), z)
            self.assertEqual(len({z["ZoneId"] for z in zones}), len(zones))
        r = self.a0.call("DescribeAvailabilityZones", {"Filters": [
            {"Name": "region-name", "Values": [fixture.REGION]},
            {"Name": "state", "Values": ["available"]}]})
        self.assertEqual(len(r["AvailabilityZones"]), len(fixture.ZONES))
        r = self.a1.call("DescribeAvailabilityZones",
                         {"ZoneNames": [fixture.ZONES[1]]})
        z = self.only(r["AvailabilityZones"], "zone by name")
        self.assertEqual(z["ZoneName"], fixture.ZONES[1])
        self.err(self.a0, "InvalidParameterValue",
                 "DescribeAvailabilityZones",
                 {"ZoneNames": ["us-east-1z"]})

    def test_account_attributes(self):
        vpc = self.default_vpc_id(self.a0)
        r = self.a1.call("DescribeAccountAttributes")
        attrs = {a["AttributeName"]: [v["AttributeValue"]
                                      for v in a["AttributeValues"]]
                 for a in r["AccountAttributes"]}
        self.assertEqual(attrs.get("supported-platforms"), ["VPC"], attrs)
        self.assertEqual(attrs.get("default-vpc"), [vpc], attrs)
        r = self.a0.call("DescribeAccountAttributes",
                         {"AttributeNames": ["default-vpc"]})
        a = self.only(r["AccountAttributes"], "default-vpc attribute")
        self.assertEqual(a["AttributeName"], "default-vpc")
        self.assertEqual(a["AttributeValues"], [{"AttributeValue": vpc}])

    # -- VPCs and subnets ----------------------------------------------------

    def test_vpcs(self):
        vpc = None
        for c in (self.a0, self.a1):
            vpcs = c.call("DescribeVpcs")["Vpcs"]
            v = self.only([v for v in vpcs if v.get("IsDefault")],
                          f"{c} default VPCs")
            self.assertRegex(v["VpcId"], ID["vpc"])
            self.assertEqual(v["CidrBlock"], fixture.DEFAULT_VPC_CIDR)
            self.assertEqual(v["State"], "available")
            self.assertEqual(v.get("OwnerId"), self.cloud.A.id)
            # One record, replicated: both edges name the same VPC.
            self.assertEqual(vpc or v["VpcId"], v["VpcId"])
            vpc = v["VpcId"]
        self.assertEqual(self.default_vpc_id(self.a1), vpc)
        r = self.a0.call("DescribeVpcs", {"VpcIds": [vpc]})
        self.assertEqual([v["VpcId"] for v in r["Vpcs"]], [vpc])
        r = self.a0.call("DescribeVpcs", {"Filters": [
            {"Name": "isDefault", "Values": ["false"]}]})
        self.assertNotIn(vpc, [v["VpcId"] for v in r["Vpcs"]])
        self.err(self.a1, "InvalidVpcID.NotFound", "DescribeVpcs",
                 {"VpcIds": [MISSING["vpc"]]})

    def test_subnets(self):
        vpc = self.default_vpc_id(self.a0)
        net = ipaddress.ip_network(fixture.DEFAULT_VPC_CIDR)
        seen = None
        for c in (self.a0, self.a1):
            r = c.call("DescribeSubnets", {"Filters": [
                {"Name": "default-for-az", "Values": ["true"]}]})
            subnets = r["Subnets"]
            self.assertEqual(sorted(s["AvailabilityZone"] for s in subnets),
                             list(fixture.ZONES), f"{c}: {subnets}")
            nets = []
            for s in subnets:
                self.assertRegex(s["SubnetId"], ID["subnet"])
                self.assertEqual(s["VpcId"], vpc, s)
                self.assertIs(s["DefaultForAz"], True, s)
                self.assertEqual(s["State"], "available", s)
                n = ipaddress.ip_network(s["CidrBlock"])
                self.assertTrue(n.subnet_of(net), s)
                self.assertGreater(s["AvailableIpAddressCount"], 0, s)
                nets.append(n)
            for i, x in enumerate(nets):
                for y in nets[i + 1:]:
                    self.assertFalse(x.overlaps(y), (x, y))
            ids = sorted(s["SubnetId"] for s in subnets)
            self.assertEqual(seen or ids, ids, "edges disagree")
            seen = ids
        r = self.a1.call("DescribeSubnets", {"Filters": [
            {"Name": "vpc-id", "Values": [vpc]},
            {"Name": "state", "Values": ["available"]}]})
        self.assertTrue(set(seen) <= {s["SubnetId"] for s in r["Subnets"]})
        r = self.a0.call("DescribeSubnets", {"SubnetIds": [seen[0]]})
        self.assertEqual([s["SubnetId"] for s in r["Subnets"]], [seen[0]])
        self.err(self.a0, "InvalidSubnetID.NotFound", "DescribeSubnets",
                 {"SubnetIds": [MISSING["subnet"]]})

    # -- key pairs -----------------------------------------------------------

    def check_key_listed(self, client, name, key_id, fingerprint, key_type):
        r = client.call("DescribeKeyPairs", {"KeyNames": [name]})
        k = self.only(r["KeyPairs"], f"{client} key {name}")
        self.assertEqual(k["KeyName"], name)
        self.assertEqual(k["KeyPairId"], key_id)
        self.assertEqual(k["KeyFingerprint"], fingerprint)
        self.assertEqual(k.get("KeyType"), key_type)
        return k

    def check_key_gone(self, client, name, key_id):
        self.err(client, "InvalidKeyPair.NotFound", "DescribeKeyPairs",
                 {"KeyNames": [name]})
        self.err(client, "InvalidKeyPair.NotFound", "DescribeKeyPairs",
                 {"KeyPairIds": [key_id]})

    def test_key_pair_create_rsa(self):
        name = unique("rsa")
        r = self.a0.call("CreateKeyPair", {"KeyName": name})
        self.assertEqual(r["KeyName"], name)
        self.assertRegex(r["KeyPairId"], ID["key"])
        self.assertIn("PRIVATE KEY-----", r["KeyMaterial"])
        bits, fp = fixture.rsa_private_facts(r["KeyMaterial"])
        self.assertEqual(bits, 2048)
        self.assertEqual(r["KeyFingerprint"], fp,
                         "SHA-1 of the DER PKCS#8 private key")
        kid = r["KeyPairId"]
        self.soon(lambda: self.check_key_listed(self.a1, name, kid, fp,
                                                "rsa"), "key on edge 1")
        r = self.a1.call("DescribeKeyPairs", {"Filters": [
            {"Name": "key-name", "Values": [name]}]})
        self.assertEqual([k["KeyPairId"] for k in r["KeyPairs"]], [kid])
        self.assertIn(kid, [k["KeyPairId"] for k in
                            self.a1.call("DescribeKeyPairs")["KeyPairs"]])
        self.err(self.a1, "InvalidKeyPair.Duplicate", "CreateKeyPair",
                 {"KeyName": name})
        self.check_return(self.a1.call("DeleteKeyPair", {"KeyName": name}))
        self.soon(lambda: self.check_key_gone(self.a0, name, kid),
                  "deleted key gone from edge 0")

    def test_key_pair_create_ed25519(self):
        name = unique("ed")
        r = self.a1.call("CreateKeyPair", {"KeyName": name,
                                           "KeyType": "ed25519"})
        self.assertRegex(r["KeyPairId"], ID["key"])
        self.assertIn("BEGIN OPENSSH PRIVATE KEY", r["KeyMaterial"])
        blob = fixture.openssh_private_public_blob(r["KeyMaterial"])
        self.assertTrue(blob.startswith(b"\0\0\0\x0bssh-ed25519"), blob)
        fp = fixture.ed25519_fingerprint(blob)
        self.assertEqual(r["KeyFingerprint"], fp)
        kid = r["KeyPairId"]
        self.soon(lambda: self.check_key_listed(self.a0, name, kid, fp,
                                                "ed25519"), "key on edge 0")
        self.check_return(self.a0.call("DeleteKeyPair",
                                       {"KeyPairId": kid}))
        self.soon(lambda: self.check_key_gone(self.a1, name, kid),
                  "deleted key gone from edge 1")

    def test_key_pair_import_rsa(self):
        name = unique("imp-rsa")
        line, fp = fixture.new_rsa_public()
        r = self.a0.call("ImportKeyPair", {"KeyName": name,
                                           "PublicKeyMaterial": line})
        self.assertEqual(r["KeyName"], name)
        self.assertEqual(r["KeyFingerprint"], fp,
                         "MD5 of the DER public key, colon hex")
        self.assertRegex(r["KeyPairId"], ID["key"])
        kid = r["KeyPairId"]
        self.soon(lambda: self.check_key_listed(self.a1, name, kid, fp,
                                                "rsa"), "key on edge 1")
        self.err(self.a1, "InvalidKeyPair.Duplicate", "ImportKeyPair",
                 {"KeyName": name, "PublicKeyMaterial": line})
        self.check_return(self.a1.call("DeleteKeyPair", {"KeyName": name}))
        self.soon(lambda: self.check_key_gone(self.a0, name, kid),
                  "deleted key gone from edge 0")

    def test_key_pair_import_ed25519(self):
        name = unique("imp-ed")
        line, fp = fixture.new_ed25519_public()
        r = self.a1.call("ImportKeyPair", {"KeyName": name,
                                           "PublicKeyMaterial": line})
        self.assertEqual(r["KeyFingerprint"], fp)
        kid = r["KeyPairId"]

        def listed():
            k = self.check_key_listed(self.a0, name, kid, fp, "ed25519")
            r = self.a0.call("DescribeKeyPairs", {"KeyNames": [name],
                                                  "IncludePublicKey": True})
            pub = self.only(r["KeyPairs"], "key")["PublicKey"]
            self.assertEqual(pub.split()[:2], line.decode().split()[:2])
            return k
        self.soon(listed, "imported key on edge 0")
        self.check_return(self.a0.call("DeleteKeyPair", {"KeyName": name}))

    def test_key_pair_errors(self):
        self.err(self.a0, "InvalidKeyPair.NotFound", "DescribeKeyPairs",
                 {"KeyNames": [unique("nokey")]})
        self.err(self.a1, "InvalidKeyPair.NotFound", "DescribeKeyPairs",
                 {"KeyPairIds": [MISSING["key"]]})
        self.err(self.a0, "InvalidKey.Format", "ImportKeyPair",
                 {"KeyName": unique("bad"),
                  "PublicKeyMaterial": b"ssh-rsa not-a-key"})
        r = self.a1.call("DescribeKeyPairs", {"Filters": [
            {"Name": "key-name", "Values": [unique("nokey")]}]})
        self.assertEqual(r["KeyPairs"], [])
        # EC2 deletes a key pair that is not there without complaint.
        self.check_return(self.a0.call("DeleteKeyPair",
                                       {"KeyName": unique("nokey")}))

    def test_key_pair_tags(self):
        name = unique("tagged")
        team = unique("team")
        r = self.a0.call("CreateKeyPair", {
            "KeyName": name, "TagSpecifications": [{
                "ResourceType": "key-pair",
                "Tags": [{"Key": "team", "Value": team}]}]})
        kid = r["KeyPairId"]
        self.assertEqual(tags_of(r), {"team": team})

        def listed():
            r = self.a1.call("DescribeKeyPairs", {"Filters": [
                {"Name": "tag:team", "Values": [team]}]})
            k = self.only(r["KeyPairs"], "key by tag")
            self.assertEqual(k["KeyPairId"], kid)
            self.assertEqual(tags_of(k), {"team": team})
        self.soon(listed, "tagged key on edge 1")
        r = self.a1.call("DescribeTags", {"Filters": [
            {"Name": "resource-id", "Values": [kid]}]})
        t = self.only(r["Tags"], "key's tags")
        self.assertEqual((t["ResourceId"], t["ResourceType"], t["Key"],
                          t["Value"]), (kid, "key-pair", "team", team))

    # -- security groups -----------------------------------------------------

    def test_security_group_lifecycle(self):
        desc = "web <tier> & \"friends\" 'quoted'"
        gid, name = self.create_group(self.a0, desc=desc)
        vpc = self.default_vpc_id(self.a0)

        def on_edge1():
            g = self.describe_group(self.a1, gid)
            self.assertEqual(g["GroupName"], name)
            return g
        g = self.soon(on_edge1, "new group on edge 1")
        self.assertEqual(g["Description"], desc)
        self.assertEqual(g["OwnerId"], self.cloud.A.id)
        self.assertEqual(g["VpcId"], vpc)
        self.assertEqual(g.get("IpPermissions"), [])
        self.assertEqual(rules(g.get("IpPermissionsEgress")), {ALL_TRAFFIC},
                         "a new group allows all outbound traffic")
        r = self.a1.call("DescribeSecurityGroups", {"GroupNames": [name]})
        self.assertEqual([x["GroupId"] for x in r["SecurityGroups"]], [gid])
        for f in ({"Name": "group-name", "Values": [name]},
                  {"Name": "group-id", "Values": [gid]},
                  {"Name": "vpc-id", "Values": [vpc]}):
            r = self.a1.call("DescribeSecurityGroups", {"Filters": [
                f, {"Name": "group-name", "Values": [name]}]})
            self.assertEqual([x["GroupId"] for x in r["SecurityGroups"]],
                             [gid], f)
        listed = self.a0.call("DescribeSecurityGroups")["SecurityGroups"]
        self.assertIn(gid, [x["GroupId"] for x in listed])
        self.err(self.a1, "InvalidGroup.Duplicate", "CreateSecurityGroup",
                 {"GroupName": name, "Description": "again"})
        self.check_return(self.a1.call("DeleteSecurityGroup",
                                       {"GroupId": gid}))

        def gone():
            self.err(self.a0, "InvalidGroup.NotFound",
                     "DescribeSecurityGroups", {"GroupIds": [gid]})
        self.soon(gone, "deleted group gone from edge 0")
        self.err(self.a0, "InvalidGroup.NotFound", "DescribeSecurityGroups",
                 {"GroupNames": [name]})
        self.err(self.a0, "InvalidGroup.NotFound", "DeleteSecurityGroup",
                 {"GroupId": gid})
        # A deleted name is free again; delete by name (default VPC).
        gid2, _ = self.create_group(self.a0, name=name)
        self.assertNotEqual(gid2, gid)
        self.check_return(self.a0.call("DeleteSecurityGroup",
                                       {"GroupName": name}))

    def test_security_group_default(self):
        vpc = self.default_vpc_id(self.a1)
        r = self.a1.call("DescribeSecurityGroups", {"Filters": [
            {"Name": "group-name", "Values": ["default"]}]})
        g = self.only(r["SecurityGroups"], "default groups")
        self.assertEqual(g["GroupName"], "default")
        self.assertEqual(g["VpcId"], vpc)
        self.assertIn(("-1", None, None, "group", g["GroupId"], None),
                      rules(g["IpPermissions"]),
                      "the default group admits its own members")
        r = self.a0.call("DescribeSecurityGroups",
                         {"GroupNames": ["default"]})
        self.assertEqual([x["GroupId"] for x in r["SecurityGroups"]],
                         [g["GroupId"]], "edges disagree on the default")
        self.err(self.a0, "CannotDelete", "DeleteSecurityGroup",
                 {"GroupId": g["GroupId"]})
        self.describe_group(self.a0, g["GroupId"])

    def test_security_group_errors(self):
        self.err(self.a0, "InvalidGroup.NotFound", "DescribeSecurityGroups",
                 {"GroupIds": [MISSING["sg"]]})
        self.err(self.a1, "InvalidGroup.NotFound", "DescribeSecurityGroups",
                 {"GroupNames": [unique("nogroup")]})
        self.err(self.a0, "InvalidGroupId.Malformed",
                 "DescribeSecurityGroups", {"GroupIds": ["sg-xyz"]})
        self.err(self.a1, "InvalidGroup.NotFound", "DeleteSecurityGroup",
                 {"GroupId": MISSING["sg"]})
        self.err(self.a0, "InvalidGroup.NotFound",
                 "AuthorizeSecurityGroupIngress",
                 {"GroupId": MISSING["sg"], "IpPermissions": [
                     {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                      "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}]})
        self.err(self.a0, "InvalidVpcID.NotFound", "CreateSecurityGroup",
                 {"GroupName": unique("grp"), "Description": "x",
                  "VpcId": MISSING["vpc"]})
        r = self.a0.call("DescribeSecurityGroups", {"Filters": [
            {"Name": "group-name", "Values": [unique("nogroup")]}]})
        self.assertEqual(r["SecurityGroups"], [])

    def test_security_group_ingress(self):
        gid, _ = self.create_group(self.a0)
        src, _ = self.create_group(self.a0)
        ssh = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
               "IpRanges": [{"CidrIp": "10.0.0.0/8",
                             "Description": "ssh <admins> & co"}]}
        dns = {"IpProtocol": "udp", "FromPort": 53, "ToPort": 53,
               "IpRanges": [{"CidrIp": "192.0.2.0/24"},
                            {"CidrIp": "198.51.100.7/32"}]}
        web = {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 81,
               "UserIdGroupPairs": [{"GroupId": src}]}
        ping = {"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
        r = self.a0.call("AuthorizeSecurityGroupIngress", {
            "GroupId": gid, "IpPermissions": [ssh, dns, web, ping]})
        self.check_return(r)
        want = {
            ("tcp", 22, 22, "cidr", "10.0.0.0/8", "ssh <admins> & co"),
            ("udp", 53, 53, "cidr", "192.0.2.0/24", None),
            ("udp", 53, 53, "cidr", "198.51.100.7/32", None),
            ("tcp", 80, 81, "group", src, None),
            ("icmp", 8, -1, "cidr", "0.0.0.0/0", None),
        }

        def has(expect):
            g = self.describe_group(self.a1, gid)
            self.assertEqual(rules(g["IpPermissions"]), expect)
            return g
        g = self.soon(lambda: has(want), "rules on edge 1")
        pair = [p for p in g["IpPermissions"] if p.get("UserIdGroupPairs")]
        self.assertEqual(pair[0]["UserIdGroupPairs"][0].get("UserId"),
                         self.cloud.A.id)
        self.err(self.a1, "InvalidPermission.Duplicate",
                 "AuthorizeSecurityGroupIngress",
                 {"GroupId": gid, "IpPermissions": [ssh]})
        r = self.a1.call("RevokeSecurityGroupIngress", {
            "GroupId": gid, "IpPermissions": [
                {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                 "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}, web]})
        self.check_return(r)
        want -= {("tcp", 22, 22, "cidr", "10.0.0.0/8", "ssh <admins> & co"),
                 ("tcp", 80, 81, "group", src, None)}
        self.soon(lambda: has(want), "revoked rules gone on edge 1")
        self.soon(lambda: self.assertEqual(
            rules(self.describe_group(self.a0, gid)["IpPermissions"]),
            want), "revoked rules gone on edge 0")
        # A rule that is not there: EC2 (default VPC) answers with the
        # unknown rules, or InvalidPermission.NotFound; nothing else moves.
        absent = {"IpProtocol": "tcp", "FromPort": 9, "ToPort": 9,
                  "IpRanges": [{"CidrIp": "203.0.113.0/24"}]}
        try:
            r = self.a1.call("RevokeSecurityGroupIngress", {
                "GroupId": gid, "IpPermissions": [absent]})
            self.assertEqual(rules(r.get("UnknownIpPermissions")),
                             rules([absent]), r)
        except ApiError as e:
            self.assertEqual(e.code, "InvalidPermission.NotFound", e)
        has(want)
        self.err(self.a0, "InvalidParameterValue",
                 "AuthorizeSecurityGroupIngress",
                 {"GroupId": gid, "IpPermissions": [
                     {"IpProtocol": "bogus", "FromPort": 1, "ToPort": 2,
                      "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}]})
        self.err(self.a0, "InvalidGroup.NotFound",
                 "AuthorizeSecurityGroupIngress",
                 {"GroupId": gid, "IpPermissions": [
                     {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2,
                      "UserIdGroupPairs": [{"GroupId": MISSING["sg"]}]}]})

    def test_security_group_ingress_old_shape(self):
        # The flat parameters of the 2009-era API, by group name.
        gid, name = self.create_group(self.a1)
        self.check_return(self.a1.call("AuthorizeSecurityGroupIngress", {
            "GroupName": name, "IpProtocol": "tcp", "FromPort": 443,
            "ToPort": 443, "CidrIp": "0.0.0.0/0"}))
        self.check_return(self.a1.call("AuthorizeSecurityGroupIngress", {
            "GroupId": gid, "IpProtocol": "udp", "FromPort": 1000,
            "ToPort": 2000, "CidrIp": "10.1.0.0/16"}))
        want = {("tcp", 443, 443, "cidr", "0.0.0.0/0", None),
                ("udp", 1000, 2000, "cidr", "10.1.0.0/16", None)}
        self.soon(lambda: self.assertEqual(rules(self.describe_group(
            self.a0, gid)["IpPermissions"]), want), "rules on edge 0")
        self.check_return(self.a0.call("RevokeSecurityGroupIngress", {
            "GroupName": name, "IpProtocol": "tcp", "FromPort": 443,
            "ToPort": 443, "CidrIp": "0.0.0.0/0"}))
        self.soon(lambda: self.assertEqual(rules(self.describe_group(
            self.a1, gid)["IpPermissions"]),
            {("udp", 1000, 2000, "cidr", "10.1.0.0/16", None)}),
            "old-shape revoke on edge 1")

    def test_security_group_egress(self):
        gid, _ = self.create_group(self.a0)
        https = {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                 "IpRanges": [{"CidrIp": "192.0.2.0/24"}]}
        self.check_return(self.a0.call("AuthorizeSecurityGroupEgress", {
            "GroupId": gid, "IpPermissions": [https]}))
        self.err(self.a0, "InvalidPermission.Duplicate",
                 "AuthorizeSecurityGroupEgress",
                 {"GroupId": gid, "IpPermissions": [https]})
        want = {ALL_TRAFFIC, ("tcp", 443, 443, "cidr", "192.0.2.0/24", None)}
        self.soon(lambda: self.assertEqual(rules(self.describe_group(
            self.a1, gid)["IpPermissionsEgress"]), want), "egress on edge 1")
        self.check_return(self.a1.call("RevokeSecurityGroupEgress", {
            "GroupId": gid, "IpPermissions": [
                {"IpProtocol": "-1",
                 "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]}))
        self.soon(lambda: self.assertEqual(rules(self.describe_group(
            self.a0, gid)["IpPermissionsEgress"]),
            {("tcp", 443, 443, "cidr", "192.0.2.0/24", None)}),
            "allow-all egress revoked, seen on edge 0")
        self.check_return(self.a0.call("RevokeSecurityGroupEgress", {
            "GroupId": gid, "IpPermissions": [https]}))
        g = self.describe_group(self.a0, gid)
        self.assertEqual(rules(g.get("IpPermissionsEgress")), set())
        self.assertEqual(g.get("IpPermissions"), [])

    def test_security_group_paging(self):
        suite = unique("page")
        made = set()
        for _ in range(7):
            gid, _ = self.create_group(self.a0, TagSpecifications=[{
                "ResourceType": "security-group",
                "Tags": [{"Key": "suite", "Value": suite}]}])
            made.add(gid)
        flt = {"Filters": [{"Name": "tag:suite", "Values": [suite]}]}
        self.soon(lambda: self.assertEqual(
            {g["GroupId"] for g in self.a1.call(
                "DescribeSecurityGroups", flt)["SecurityGroups"]}, made),
            "7 groups on edge 1")
        pages = self.a1.pages("DescribeSecurityGroups", flt, page_size=5)
        got = [g["GroupId"] for p in pages for g in p["SecurityGroups"]]
        self.assertEqual(sorted(got), sorted(made), "each group once")
        if self.a1.counts_pages:
            self.assertGreaterEqual(len(pages), 2, pages)
            self.assertLessEqual(len(pages[0]["SecurityGroups"]), 5)
            self.assertTrue(pages[0].get("NextToken"), pages[0])

    # -- tags ----------------------------------------------------------------

    def test_tags(self):
        name_tag = unique("web")
        gid, _ = self.create_group(self.a0, TagSpecifications=[{
            "ResourceType": "security-group",
            "Tags": [{"Key": "Name", "Value": name_tag}]}])
        odd = "dev <&> \"x\" 'y' \u00e9\u6f22"
        self.soon(lambda: self.describe_group(self.a1, gid),
                  "group on edge 1")
        self.check_return(self.a1.call("CreateTags", {
            "Resources": [gid],
            "Tags": [{"Key": "env", "Value": odd},
                     {"Key": "empty", "Value": ""}]}))

        def tagged(client, expect):
            r = client.call("DescribeTags", {"Filters": [
                {"Name": "resource-id", "Values": [gid]}]})
            got = {t["Key"]: t["Value"] for t in r["Tags"]}
            self.assertEqual(got, expect)
            for t in r["Tags"]:
                self.assertEqual(t["ResourceId"], gid)
                self.assertEqual(t["ResourceType"], "security-group")
            self.assertEqual(tags_of(self.describe_group(client, gid)),
                             expect)
        full = {"Name": name_tag, "env": odd, "empty": ""}
        self.soon(lambda: tagged(self.a0, full), "tags on edge 0")
        for flt in ({"Name": "tag:env", "Values": [odd]},
                    {"Name": "tag:Name", "Values": [name_tag]},
                    {"Name": "tag-key", "Values": ["env"]}):
            r = self.a0.call("DescribeSecurityGroups", {"Filters": [
                flt, {"Name": "group-id", "Values": [gid]}]})
            self.assertEqual([g["GroupId"] for g in r["SecurityGroups"]],
                             [gid], flt)
        r = self.a0.call("DescribeSecurityGroups", {"Filters": [
            {"Name": "tag:env", "Values": ["prod"]},
            {"Name": "group-id", "Values": [gid]}]})
        self.assertEqual(r["SecurityGroups"], [])
        r = self.a0.call("DescribeTags", {"Filters": [
            {"Name": "key", "Values": ["Name"]},
            {"Name": "value", "Values": [name_tag]}]})
        self.assertEqual([t["ResourceId"] for t in r["Tags"]], [gid])
        # A value that does not match deletes nothing; a bare key deletes
        # whatever the value.
        self.check_return(self.a0.call("DeleteTags", {
            "Resources": [gid], "Tags": [{"Key": "env", "Value": "prod"}]}))
        self.check_return(self.a0.call("DeleteTags", {
            "Resources": [gid], "Tags": [{"Key": "empty"}]}))
        self.soon(lambda: tagged(self.a1, {"Name": name_tag, "env": odd}),
                  "one tag deleted, seen on edge 1")
        self.check_return(self.a1.call("DeleteTags", {
            "Resources": [gid], "Tags": [{"Key": "env"}]}))
        self.soon(lambda: tagged(self.a0, {"Name": name_tag}),
                  "env deleted, seen on edge 0")
        self.err(self.a0, "InvalidGroup.NotFound", "CreateTags",
                 {"Resources": [MISSING["sg"]],
                  "Tags": [{"Key": "a", "Value": "b"}]})

    # -- images --------------------------------------------------------------

    def test_images(self):
        name = unique("img")
        params = dict(fixture.IMAGE_PARAMS, Name=name,
                      Description="an <image> & more",
                      ImageLocation=f"clients-tier/{name}.manifest.xml")
        r = self.a0.call("RegisterImage", params)
        ami = r["ImageId"]
        self.assertRegex(ami, ID["ami"])

        def described(client):
            r = client.call("DescribeImages", {"ImageIds": [ami]})
            img = self.only(r["Images"], f"{client} image {ami}")
            self.assertEqual(img["ImageId"], ami)
            self.assertEqual(img["Name"], name)
            return img
        img = self.soon(lambda: described(self.a1), "image on edge 1")
        self.assertEqual(img["Description"], "an <image> & more")
        self.assertEqual(img["OwnerId"], self.cloud.A.id)
        self.assertEqual(img["Architecture"], "x86_64")
        self.assertEqual(img["ImageType"], "machine")
        self.assertIs(img["Public"], False)
        self.assertIn(img["State"], ("pending", "available"))
        self.assertEqual(img.get("RootDeviceName"), "/dev/sda1")
        self.assertEqual(img.get("VirtualizationType"), "hvm")
        for q in ({"Owners": ["self"]},
                  {"Filters": [{"Name": "image-id", "Values": [ami]}]},
                  {"Filters": [{"Name": "name", "Values": [name]}]}):
            r = self.a1.call("DescribeImages", q)
            self.assertIn(ami, [i["ImageId"] for i in r["Images"]], q)
        self.err(self.a1, "InvalidAMIName.Duplicate", "RegisterImage",
                 dict(params, ImageLocation=f"clients-tier/{name}-2.xml"))
        self.check_return(self.a1.call("DeregisterImage", {"ImageId": ami}))

        def gone(client):
            r = client.call("DescribeImages", {"Owners": ["self"]})
            self.assertNotIn(ami, [i["ImageId"] for i in r["Images"]])
            try:
                r = client.call("DescribeImages", {"ImageIds": [ami]})
            except ApiError as e:
                self.assertEqual(e.code, "InvalidAMIID.NotFound", e)
                return
            # EC2 may still show a deregistered image for a while.
            self.assertTrue(all(i.get("State") == "deregistered"
                                for i in r["Images"]), r)
        self.soon(lambda: gone(self.a0), "deregistered on edge 0")

    def test_image_errors(self):
        self.err(self.a0, "InvalidAMIID.NotFound", "DescribeImages",
                 {"ImageIds": [MISSING["ami"]]})
        self.err(self.a1, "InvalidAMIID.Malformed", "DescribeImages",
                 {"ImageIds": ["ami-xyz"]})
        self.err(self.a0, "InvalidAMIID.NotFound", "DeregisterImage",
                 {"ImageId": MISSING["ami"]})
        r = self.a1.call("DescribeImages", {"Filters": [
            {"Name": "name", "Values": [unique("noimg")]}]})
        self.assertEqual(r["Images"], [])

    # -- instance types, instances, addresses --------------------------------

    def test_instance_types(self):
        types = self.a0.call("DescribeInstanceTypes")["InstanceTypes"]
        self.assertTrue(types, "no instance types")
        for t in types:
            self.assertRegex(t["InstanceType"], r"^[a-z0-9-]+\.[a-z0-9]+$")
            self.assertGreater(t["VCpuInfo"]["DefaultVCpus"], 0, t)
            self.assertGreater(t["MemoryInfo"]["SizeInMiB"], 0, t)
        names = [t["InstanceType"] for t in types]
        self.assertEqual(len(names), len(set(names)), names)
        pick = types[len(types) // 2]
        r = self.a1.call("DescribeInstanceTypes",
                         {"InstanceTypes": [pick["InstanceType"]]})
        t = self.only(r["InstanceTypes"], "type by name")
        self.assertEqual(t["VCpuInfo"]["DefaultVCpus"],
                         pick["VCpuInfo"]["DefaultVCpus"])
        self.assertEqual(t["MemoryInfo"]["SizeInMiB"],
                         pick["MemoryInfo"]["SizeInMiB"])
        self.err(self.a0, "InvalidInstanceType", "DescribeInstanceTypes",
                 {"InstanceTypes": ["zz9.plural"]})

    def test_instances_empty(self):
        for c in (self.a0, self.a1):
            self.assertEqual(c.call("DescribeInstances")["Reservations"], [])
        r = self.a1.call("DescribeInstances", {"Filters": [
            {"Name": "instance-state-name", "Values": ["running"]}]})
        self.assertEqual(r["Reservations"], [])
        self.err(self.a0, "InvalidInstanceID.NotFound", "DescribeInstances",
                 {"InstanceIds": [MISSING["i"]]})
        self.err(self.a1, "InvalidInstanceID.Malformed", "DescribeInstances",
                 {"InstanceIds": ["i-xyz"]})

    def test_addresses_empty(self):
        for c in (self.a0, self.a1):
            self.assertEqual(c.call("DescribeAddresses")["Addresses"], [])

    # -- DryRun --------------------------------------------------------------

    def test_dry_run(self):
        """DryRun: DryRunOperation and nothing done, for writes and reads
        alike."""
        name = unique("dry")
        self.err(self.a0, "DryRunOperation", "CreateSecurityGroup",
                 {"GroupName": name, "Description": "x", "DryRun": True})
        self.err(self.a1, "DryRunOperation", "CreateKeyPair",
                 {"KeyName": name, "DryRun": True})
        self.err(self.a0, "DryRunOperation", "DescribeSecurityGroups",
                 {"DryRun": True})
        self.err(self.a0, "InvalidGroup.NotFound", "DescribeSecurityGroups",
                 {"GroupNames": [name]})
        self.err(self.a1, "InvalidKeyPair.NotFound", "DescribeKeyPairs",
                 {"KeyNames": [name]})
        self.err(self.a1, "DryRunOperation", "DescribeRegions",
                 {"DryRun": True})
