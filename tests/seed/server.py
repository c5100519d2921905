import grpc
from concurrent import futures
import helloworld_pb2
import helloworld_pb2_grpc

# Implement the service logic.
class GreeterServicer(helloworld_pb2_grpc.GreeterServiceServicer):
    def SayHello(self, request, context):
        # Business logic: Concatenate a string.
        response_msg = f"Hello, {request.name}!"
        return helloworld_pb2.HelloResponse(message=response_msg)


def serve():
    # 1. Create a server with a thread pool.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=10))
  
    # 2. Register the service implementation with the server.
    helloworld_pb2_grpc.add_GreeterServiceServicer_to_server(GreeterServicer(), server)
   
    # 3. Listen on a port. This is the deployment address.
    port = "[::]:50051"
    server.add_insecure_port(port)
   
    print(f"Server started, listening on {port} ...")
    server.start()
   
    # 4. Block the main thread to keep the service running.
    server.wait_for_termination()

if __name__ == "__main__":
    serve()
