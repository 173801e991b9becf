from tests.client.fleet_rig import fleet_broker, fleet_rig  # noqa: F401  (fixtures by name)
