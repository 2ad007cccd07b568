#!/usr/bin/python3
"""Verifies a Passerelle pass with a standard JOSE library (jwcrypto).

Usage: verify-pass.py COORDINATOR_PUB_PEM DIRECTORY_JWS PASS_TOKEN

The directory is verified with the coordinator's public key; the pass with
the key its header names, taken from its home space's JWKS in the directory.
Nothing here shares code with the node: it is an independent check.
"""
import json
import sys

from jwcrypto import jwk, jws


def main():
    pub_pem, dir_file, token = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(pub_pem, 'rb') as f:
        coordinator = jwk.JWK.from_pem(f.read())
    with open(dir_file) as f:
        d = jws.JWS()
        d.deserialize(f.read().strip())
    d.verify(coordinator, alg='EdDSA')
    directory = json.loads(d.payload)

    p = jws.JWS()
    p.deserialize(token)
    header = p.jose_header
    claims = json.loads(p.objects['payload'])
    space = next(s for s in directory['spaces'] if s['id'] == claims['iss'])
    keys = jwk.JWKSet.from_json(json.dumps(space['jwks']))
    key = keys.get_key(header['kid'])
    p.verify(key, alg='EdDSA')
    print(f"jwcrypto: directory serial {directory['serial']} verified with the "
          f"coordinator's key; pass verified with {space['id']}'s key "
          f"{header['kid']}: {json.dumps(claims)}")


if __name__ == '__main__':
    try:
        main()
    except Exception as e:  # the demo shows why, whatever it is
        print(f"verify-pass: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
