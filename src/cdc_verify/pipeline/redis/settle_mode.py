"""How a stream's entries are settled once their outcome is durable (commit.py's script).

Each mode makes a retried commit write nothing twice:
  ack       XACK in the group, in the commit's script (the stream is on the state
            server); XACK's answer guards duplicate, malformed and late records
  mark      SET NX of a marker key per entry; the runner acks the entry where it lives
            afterwards, or (Faust) it was acked upstream
  position  read-only production: a marker guards duplicate, malformed and late
            records; settled entries leave the waiting set
"""

from enum import StrEnum


class SettleMode(StrEnum):
    ACK = "ack"
    MARK = "mark"
    POSITION = "position"
