"""IEEE 2030.5 on the wire: XML, resources, (de)serialising, TLS identity and transport."""
