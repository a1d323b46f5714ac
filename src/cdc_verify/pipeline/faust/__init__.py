"""The verifier as Faust workers on Kafka: Redis -> Kafka forwarders, a join agent per partition."""
