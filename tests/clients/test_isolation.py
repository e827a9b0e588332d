"""Account isolation, through boto3 (Debian's python3-boto3) on a live cloud
of 3 peers, 2 edges.  Account A (the admin account of `mallee init`) makes
security groups, key pairs, tags and an image through edge 0; once A sees
them through edge 1, account B (`mallee admin account create`) cannot see,
tag, change or delete any of them through either edge, and A's resources
are unchanged afterwards.  B's own resources of the same names are B's.
Keys: a second key of A acts as A; a revoked key fails on every edge.

Runs under /usr/bin/python3 (which has boto3); re-runs itself there from
another python3."""

import os
import sys

try:
    import boto3  # noqa: F401 - only: is it here?
except ImportError:
    if sys.executable != "/usr/bin/python3" and \
            os.access("/usr/bin/python3", os.X_OK):
        os.execv("/usr/bin/python3",
                 ["/usr/bin/python3", os.path.abspath(__file__)]
                 + sys.argv[1:])
    raise

import unittest

import fixture
from contract import rules, tags_of
from fixture import ApiError, Boto3, eventually, unique


class Isolation(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cloud = fixture.CLOUD
        cls.cloud = cloud
        cls.a0 = Boto3(cloud, cloud.A, 0)
        cls.a1 = Boto3(cloud, cloud.A, 1)
        cls.b0 = Boto3(cloud, cloud.B, 0)
        cls.b1 = Boto3(cloud, cloud.B, 1)

    def err(self, client, codes, op, params=None):
        codes = (codes,) if isinstance(codes, str) else codes
        with self.assertRaises(ApiError, msg=f"{client} {op} {params}") as cm:
            client.call(op, params)
        self.assertIn(cm.exception.code, codes,
                      f"{client} {op} {params}: {cm.exception}")
        return cm.exception

    def a_group(self):
        """A group of A's with a rule and a tag, seen by A on both edges."""
        name = unique("a-sg")
        gid = self.a0.call("CreateSecurityGroup", {
            "GroupName": name, "Description": "A's",
            "TagSpecifications": [{"ResourceType": "security-group",
                                   "Tags": [{"Key": "owner",
                                             "Value": "A"}]}]})["GroupId"]
        self.a0.call("AuthorizeSecurityGroupIngress", {
            "GroupId": gid, "IpPermissions": [
                {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                 "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}]})
        g = eventually(lambda: self.a_state(self.a1, gid),
                       what="A's group, rule and tag on edge 1")
        return gid, name, g

    def a_state(self, client, gid):
        g = client.call("DescribeSecurityGroups",
                        {"GroupIds": [gid]})["SecurityGroups"][0]
        self.assertEqual(tags_of(g), {"owner": "A"})
        self.assertEqual(len(rules(g["IpPermissions"])), 1)
        return g

    def settle(self, b_marker_edge=0):
        """Waits until a write B makes now on edge b_marker_edge is visible
        on the other edge, so that anything B did before has had as long to
        spread."""
        other = self.b1 if b_marker_edge == 0 else self.b0
        mine = self.b0 if b_marker_edge == 0 else self.b1
        name = unique("b-marker")
        gid = mine.call("CreateSecurityGroup", {
            "GroupName": name, "Description": "marker"})["GroupId"]
        eventually(lambda: other.call("DescribeSecurityGroups",
                                      {"GroupIds": [gid]}),
                   what="B's marker on the other edge")

    def test_groups_invisible_to_b(self):
        gid, name, _ = self.a_group()
        for b in (self.b0, self.b1):
            listed = b.call("DescribeSecurityGroups")["SecurityGroups"]
            self.assertNotIn(gid, [g["GroupId"] for g in listed])
            self.assertNotIn(name, [g["GroupName"] for g in listed])
            self.err(b, "InvalidGroup.NotFound", "DescribeSecurityGroups",
                     {"GroupIds": [gid]})
            self.err(b, "InvalidGroup.NotFound", "DescribeSecurityGroups",
                     {"GroupNames": [name]})
            for f in ({"Name": "group-id", "Values": [gid]},
                      {"Name": "group-name", "Values": [name]},
                      {"Name": "tag:owner", "Values": ["A"]}):
                r = b.call("DescribeSecurityGroups", {"Filters": [f]})
                self.assertEqual(r["SecurityGroups"], [], f)
            r = b.call("DescribeTags", {"Filters": [
                {"Name": "resource-id", "Values": [gid]}]})
            self.assertEqual(r["Tags"], [])
            self.assertNotIn(gid, [t["ResourceId"] for t in
                                   b.call("DescribeTags")["Tags"]])

    def test_groups_untouchable_by_b(self):
        gid, name, before = self.a_group()
        ssh = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
               "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}
        for b in (self.b1, self.b0):
            self.err(b, "InvalidGroup.NotFound", "DeleteSecurityGroup",
                     {"GroupId": gid})
            self.err(b, "InvalidGroup.NotFound", "DeleteSecurityGroup",
                     {"GroupName": name})
            self.err(b, "InvalidGroup.NotFound", "CreateTags",
                     {"Resources": [gid],
                      "Tags": [{"Key": "owner", "Value": "B"}]})
            try:
                b.call("DeleteTags", {"Resources": [gid],
                                      "Tags": [{"Key": "owner"}]})
            except ApiError as e:
                self.assertEqual(e.code, "InvalidGroup.NotFound", e)
            self.err(b, "InvalidGroup.NotFound",
                     "AuthorizeSecurityGroupIngress",
                     {"GroupId": gid, "IpPermissions": [
                         {"IpProtocol": "tcp", "FromPort": 80,
                          "ToPort": 80, "IpRanges": [{"CidrIp":
                                                       "0.0.0.0/0"}]}]})
            self.err(b, "InvalidGroup.NotFound",
                     "AuthorizeSecurityGroupIngress",
                     {"GroupName": name, "IpProtocol": "tcp",
                      "FromPort": 81, "ToPort": 81, "CidrIp": "0.0.0.0/0"})
            self.err(b, "InvalidGroup.NotFound", "RevokeSecurityGroupIngress",
                     {"GroupId": gid, "IpPermissions": [ssh]})
            self.err(b, "InvalidGroup.NotFound", "RevokeSecurityGroupEgress",
                     {"GroupId": gid, "IpPermissions": [
                         {"IpProtocol": "-1",
                          "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]})
            # B names A's group as the source of B's own rule: not found.
            mine = b.call("CreateSecurityGroup", {
                "GroupName": unique("b-sg"),
                "Description": "B's"})["GroupId"]
            self.err(b, "InvalidGroup.NotFound",
                     "AuthorizeSecurityGroupIngress",
                     {"GroupId": mine, "IpPermissions": [
                         {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2,
                          "UserIdGroupPairs": [{"GroupId": gid}]}]})
        self.settle(0)
        self.settle(1)
        for a in (self.a0, self.a1):
            after = self.a_state(a, gid)
            self.assertEqual(after["GroupName"], name)
            self.assertEqual(rules(after["IpPermissions"]),
                             rules(before["IpPermissions"]))
            self.assertEqual(rules(after["IpPermissionsEgress"]),
                             rules(before["IpPermissionsEgress"]))

    def test_same_names_are_separate(self):
        gid, name, _ = self.a_group()
        mine = self.b1.call("CreateSecurityGroup", {
            "GroupName": name, "Description": "B's own"})["GroupId"]
        self.assertNotEqual(mine, gid)
        g = eventually(lambda: self.b0.call(
            "DescribeSecurityGroups", {"GroupNames": [name]}),
            what="B's group on edge 0")["SecurityGroups"]
        self.assertEqual([x["GroupId"] for x in g], [mine])
        self.assertEqual(g[0]["OwnerId"], self.cloud.B.id)
        self.b0.call("DeleteSecurityGroup", {"GroupName": name})
        self.settle(0)
        self.assertEqual(self.a1.call("DescribeSecurityGroups", {
            "GroupNames": [name]})["SecurityGroups"][0]["GroupId"], gid)

    def test_default_vpc_and_group_are_per_account(self):
        def defaults(c):
            vpc = c.call("DescribeVpcs", {"Filters": [
                {"Name": "isDefault", "Values": ["true"]}]})["Vpcs"]
            sg = c.call("DescribeSecurityGroups",
                        {"GroupNames": ["default"]})["SecurityGroups"]
            self.assertEqual(len(vpc), 1, vpc)
            self.assertEqual(len(sg), 1, sg)
            return vpc[0]["VpcId"], sg[0]["GroupId"], sg[0]["OwnerId"]
        a_vpc, a_sg, a_owner = defaults(self.a1)
        b_vpc, b_sg, b_owner = defaults(self.b1)
        self.assertEqual(a_owner, self.cloud.A.id)
        self.assertEqual(b_owner, self.cloud.B.id)
        self.assertNotEqual(a_sg, b_sg)
        self.assertNotEqual(a_vpc, b_vpc)
        self.err(self.b0, "InvalidGroup.NotFound", "DescribeSecurityGroups",
                 {"GroupIds": [a_sg]})
        self.err(self.b0, "InvalidVpcID.NotFound", "DescribeVpcs",
                 {"VpcIds": [a_vpc]})
        self.err(self.b1, ("InvalidVpcID.NotFound",), "CreateSecurityGroup",
                 {"GroupName": unique("b-in-a"), "Description": "x",
                  "VpcId": a_vpc})
        b_subnets = self.b0.call("DescribeSubnets")["Subnets"]
        self.assertTrue(b_subnets)
        self.assertTrue(all(s["VpcId"] == b_vpc for s in b_subnets),
                        b_subnets)

    def test_key_pairs(self):
        line, fp = fixture.new_rsa_public()
        name = unique("a-key")
        kid = self.a0.call("ImportKeyPair", {
            "KeyName": name, "PublicKeyMaterial": line})["KeyPairId"]
        eventually(lambda: self.a1.call("DescribeKeyPairs",
                                        {"KeyNames": [name]}),
                   what="A's key on edge 1")
        for b in (self.b0, self.b1):
            self.assertNotIn(kid, [k["KeyPairId"] for k in b.call(
                "DescribeKeyPairs")["KeyPairs"]])
            self.err(b, "InvalidKeyPair.NotFound", "DescribeKeyPairs",
                     {"KeyNames": [name]})
            self.err(b, "InvalidKeyPair.NotFound", "DescribeKeyPairs",
                     {"KeyPairIds": [kid]})
            r = b.call("DescribeKeyPairs", {"Filters": [
                {"Name": "key-name", "Values": [name]}]})
            self.assertEqual(r["KeyPairs"], [])
            # EC2 answers a delete of an absent key name with success; by
            # id it may say NotFound.  Either way A's key stays.
            b.call("DeleteKeyPair", {"KeyName": name})
            try:
                b.call("DeleteKeyPair", {"KeyPairId": kid})
            except ApiError as e:
                self.assertEqual(e.code, "InvalidKeyPair.NotFound", e)
            self.err(b, "InvalidKeyPair.NotFound", "CreateTags",
                     {"Resources": [kid],
                      "Tags": [{"Key": "owner", "Value": "B"}]})
        # B may use the same name for a key of its own.
        line2, fp2 = fixture.new_ed25519_public()
        r = self.b1.call("ImportKeyPair", {"KeyName": name,
                                           "PublicKeyMaterial": line2})
        self.assertNotEqual(r["KeyPairId"], kid)
        self.assertEqual(r["KeyFingerprint"], fp2)
        self.settle(0)
        self.settle(1)
        for a in (self.a0, self.a1):
            k = a.call("DescribeKeyPairs", {"KeyNames": [name]})["KeyPairs"]
            self.assertEqual([(x["KeyPairId"], x["KeyFingerprint"],
                               x.get("Tags", [])) for x in k],
                             [(kid, fp, [])])
        k = self.b0.call("DescribeKeyPairs", {"KeyNames": [name]})
        self.assertEqual([x["KeyPairId"] for x in k["KeyPairs"]],
                         [r["KeyPairId"]])

    def test_images(self):
        name = unique("a-img")
        ami = self.a0.call("RegisterImage", dict(
            fixture.IMAGE_PARAMS, Name=name,
            ImageLocation=f"clients-tier/{name}.xml"))["ImageId"]
        eventually(lambda: self.a1.call("DescribeImages",
                                        {"ImageIds": [ami]}),
                   what="A's image on edge 1")
        for b in (self.b0, self.b1):
            self.assertNotIn(ami, [i["ImageId"] for i in b.call(
                "DescribeImages", {"Owners": ["self"]})["Images"]])
            self.assertNotIn(ami, [i["ImageId"] for i in b.call(
                "DescribeImages")["Images"]])
            self.err(b, "InvalidAMIID.NotFound", "DescribeImages",
                     {"ImageIds": [ami]})
            self.err(b, ("InvalidAMIID.NotFound", "AuthFailure",
                         "UnauthorizedOperation"), "DeregisterImage",
                     {"ImageId": ami})
            self.err(b, "InvalidAMIID.NotFound", "CreateTags",
                     {"Resources": [ami],
                      "Tags": [{"Key": "owner", "Value": "B"}]})
        self.settle(1)
        img = self.a0.call("DescribeImages", {"ImageIds": [ami]})["Images"]
        self.assertEqual([(i["ImageId"], i.get("Tags", [])) for i in img],
                         [(ami, [])])

    def test_identity_and_keys(self):
        self.assertEqual(self.b0.call("GetCallerIdentity",
                                      service="sts")["Account"],
                         self.cloud.B.id)
        # A second key of A's is A everywhere.
        a2 = self.cloud.create_key(self.cloud.A)
        for e in (0, 1):
            self.cloud.wait_key_works(a2, e)
            self.assertEqual(Boto3(self.cloud, a2, e).call(
                "GetCallerIdentity", service="sts")["Account"],
                self.cloud.A.id)
        # A revoked key fails on every edge within seconds.
        self.cloud.revoke_key(a2.key_id)
        for e in (0, 1):
            c = Boto3(self.cloud, a2, e)
            eventually(lambda: self.err(c, ("AuthFailure",),
                                        "DescribeRegions"),
                       timeout=15, what=f"revoked key refused on edge {e}")
        # The other keys still work.
        self.assertEqual(self.a1.call("DescribeRegions")["Regions"][0]
                         ["RegionName"], fixture.REGION)
        self.assertEqual(self.b1.call("GetCallerIdentity",
                                      service="sts")["Account"],
                         self.cloud.B.id)


if __name__ == "__main__":
    fixture.main()
