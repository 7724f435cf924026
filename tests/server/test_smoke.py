def test_the_server_answers(server):
    assert server.api.call("queues.get_all")["queues"]
